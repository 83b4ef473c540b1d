"""Campaign analytics, computed by SQL from the event rows (no counters that can drift).

A message counts once per event type, at the first time it had that event (two opens of one
email are one opened message); events without a message count once each. Totals, steps,
variants, channels and hours come from one ``GROUPING SETS`` query over those first events.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from services.campaign.campaigns.schemas import (
    METRICS,
    Analytics,
    ChannelCounts,
    HourCounts,
    StepCounts,
    Totals,
    VariantCounts,
)

_COUNTS = ",\n".join(f"count(*) FILTER (WHERE f.type = '{m}') AS {m}" for m in METRICS)

_EVENTS_WHERE = """WHERE e.org_id = :org AND e.campaign_id = :campaign
      AND e.type = ANY(CAST(:types AS text[]))
      AND (CAST(:since AS timestamptz) IS NULL OR e.occurred_at >= :since)
      AND (CAST(:until AS timestamptz) IS NULL OR e.occurred_at < :until)"""

COUNT_SQL = f"SELECT count(*) FROM message_events e {_EVENTS_WHERE}"  # noqa: S608
"""The cheapest query reading the events the analytics read (the benchmark's baseline)."""

EVENTS_SQL = f"""
WITH firsts AS (
    SELECT e.message_id, e.type, min(e.occurred_at) AS at
    FROM message_events e
    {_EVENTS_WHERE}
    GROUP BY e.message_id, e.type, CASE WHEN e.message_id IS NULL THEN e.id END
)
SELECT
    GROUPING(m.step_id) AS g_step, GROUPING(m.variant) AS g_variant, GROUPING(m.channel) AS g_channel,
    GROUPING(date_trunc('hour', f.at)) AS g_hour,
    m.step_id, m.variant, m.channel, date_trunc('hour', f.at) AS hour,
    {_COUNTS}
FROM firsts f
LEFT JOIN messages m ON m.id = f.message_id
GROUP BY GROUPING SETS ((), (m.step_id), (m.step_id, m.variant), (m.channel), (date_trunc('hour', f.at)))
"""  # noqa: S608

ENROLLED_SQL = """
SELECT date_trunc('hour', created_at) AS hour, count(*) AS n
FROM enrollments
WHERE org_id = :org AND campaign_id = :campaign
  AND (CAST(:since AS timestamptz) IS NULL OR created_at >= :since)
  AND (CAST(:until AS timestamptz) IS NULL OR created_at < :until)
GROUP BY 1
"""


def analytics_params(
    org_id: uuid.UUID, campaign_id: uuid.UUID, since: datetime | None, until: datetime | None
) -> dict[str, Any]:
    """The bind parameters of :data:`EVENTS_SQL` and :data:`ENROLLED_SQL`."""
    return {"org": org_id, "campaign": campaign_id, "since": since, "until": until, "types": list(METRICS)}


def _counts(row: Any) -> dict[str, int]:
    return {m: int(getattr(row, m)) for m in METRICS}


async def campaign_analytics(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    campaign_id: uuid.UUID,
    positions: dict[uuid.UUID, tuple[int, str]],
    since: datetime | None = None,
    until: datetime | None = None,
) -> Analytics:
    """Return the campaign's counts per campaign, step, variant, channel and hour."""
    params = analytics_params(org_id, campaign_id, since, until)
    conn = await session.connection()
    rows = (await conn.execute(sa.text(EVENTS_SQL), params)).all()
    enrolled_rows = (await conn.execute(sa.text(ENROLLED_SQL), params)).all()

    enrolled_by_hour = {r.hour: int(r.n) for r in enrolled_rows}
    totals = Totals(enrolled=sum(enrolled_by_hour.values()))
    by_step: list[StepCounts] = []
    by_variant: list[VariantCounts] = []
    by_channel: list[ChannelCounts] = []
    hourly: dict[datetime, HourCounts] = {h: HourCounts(hour=h, enrolled=n) for h, n in enrolled_by_hour.items()}
    for row in rows:
        counts = _counts(row)
        if row.g_step and row.g_variant and row.g_channel and row.g_hour:
            totals = Totals(enrolled=totals.enrolled, **counts)
        elif not row.g_step and row.g_variant:
            if row.step_id is not None:
                position, channel = positions.get(row.step_id, (None, None))
                by_step.append(StepCounts(step_id=row.step_id, position=position, channel=channel, **counts))
        elif not row.g_step and not row.g_variant:
            if row.step_id is not None:
                by_variant.append(VariantCounts(step_id=row.step_id, variant=row.variant, **counts))
        elif not row.g_channel:
            if row.channel is not None:
                by_channel.append(ChannelCounts(channel=row.channel, **counts))
        elif not row.g_hour and row.hour is not None:
            current = hourly.get(row.hour)
            hourly[row.hour] = HourCounts(hour=row.hour, enrolled=current.enrolled if current else 0, **counts)
    by_step.sort(key=lambda s: (s.position or 0, str(s.step_id)))
    by_variant.sort(key=lambda v: (positions.get(v.step_id, (0, ""))[0], v.variant or ""))
    by_channel.sort(key=lambda c: c.channel)
    return Analytics(
        campaign_id=campaign_id,
        since=since,
        until=until,
        totals=totals,
        by_step=by_step,
        by_variant=by_variant,
        by_channel=by_channel,
        hourly=[hourly[h] for h in sorted(hourly)],
    )
