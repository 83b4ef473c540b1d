"""Campaign analytics, read from the rollups (``campaign_rollups``, kept by triggers as events land).

A message counts once per event type, in the UTC hour of the first time it had that event (two
opens of one email are one opened message); events without a message count once each;
enrollments count in the hour they were created. Requests read only the rollups: a few
thousand counters per campaign whatever its number of events (``bench/analytics.py`` times
it at 10,000 and 1,000,000 events).

Windows are whole UTC hours, the rollups' granularity: ``since`` and ``until`` must fall on an
hour (``10:00:00Z``, ``11:00:00+05:30`` is not one), otherwise the request is refused naming the
field. A window counts the messages whose *first* event of a type falls inside it.

:func:`events_sql` and :func:`count_sql` keep the computation from the raw events: the
reference the tests compare the rollups with, and the benchmark's baseline.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.models.analytics import COLUMNS
from libs.errors import Invalid
from services.campaign.campaigns.schemas import (
    METRICS,
    Analytics,
    ChannelCounts,
    HourCounts,
    StepCounts,
    Totals,
    VariantCounts,
)

_COUNTS = ",\n".join(f"coalesce(sum(f.n) FILTER (WHERE f.type = '{m}'), 0) AS {m}" for m in METRICS)
_ROLLUP_COUNTS = ", ".join(f"coalesce(sum(r.{c}), 0) AS {c}" for c in COLUMNS)


_EVENTS_WHERE = "e.org_id = :org AND e.campaign_id = :campaign AND e.type = ANY(CAST(:types AS text[]))"


def _window(column: str, since: datetime | None, until: datetime | None) -> str:
    """The time bounds actually given, written out (a generic plan cannot skip ``:since IS NULL OR``)."""
    lower = f" AND {column} >= :since" if since is not None else ""
    return lower + (f" AND {column} < :until" if until is not None else "")


def check_window(since: datetime | None, until: datetime | None) -> None:
    """Refuse bounds that are not whole UTC hours (the rollups' granularity), naming the field."""
    errors = [
        {"field": name, "message": "must be a whole hour (analytics are kept per UTC hour)", "source": "query"}
        for name, value in (("since", since), ("until", until))
        if value is not None
        and (value.tzinfo is None or value.astimezone(UTC).replace(minute=0, second=0, microsecond=0) != value)
    ]
    if errors:
        raise Invalid(errors=errors)


def rollups_sql(since: datetime | None = None, until: datetime | None = None) -> str:
    """Counts per step, variant and channel summed from the campaign's counters, and the hours as JSON.

    The ``hourly`` column of the totals row holds the hours (``hour`` in epoch seconds) as one
    JSON array, parsed by pydantic's JSON parser rather than row by row.
    """
    hour_fields = ", ".join(f"'{c}', h.{c}" for c in COLUMNS)
    return f"""
WITH g AS (
    SELECT
        GROUPING(r.step_id) AS g_step, GROUPING(r.variant) AS g_variant, GROUPING(r.channel) AS g_channel,
        GROUPING(r.hour) AS g_hour,
        r.step_id, r.variant, r.channel, r.hour,
        {_ROLLUP_COUNTS}
    FROM campaign_rollups r
    WHERE r.org_id = :org AND r.campaign_id = :campaign{_window("r.hour", since, until)}
    GROUP BY GROUPING SETS ((), (r.step_id), (r.step_id, r.variant), (r.channel), (r.hour))
)
SELECT g.*,
       CASE WHEN g.g_step = 1 AND g.g_channel = 1 THEN (
           SELECT coalesce(json_agg(json_build_object('hour', extract(epoch FROM h.hour)::bigint, {hour_fields})
                                    ORDER BY h.hour), '[]')::text
           FROM g h WHERE h.g_hour = 0
       ) END AS hourly
FROM g WHERE g.g_hour = 1
"""  # noqa: S608


def count_sql(since: datetime | None = None, until: datetime | None = None) -> str:
    """The cheapest query reading the events the analytics read (the benchmark's baseline)."""
    return f"SELECT count(*) FROM message_events e WHERE {_EVENTS_WHERE}{_window('e.occurred_at', since, until)}"  # noqa: S608


def events_sql(since: datetime | None = None, until: datetime | None = None) -> str:
    """Counts per step, variant, channel and hour of the first event of each type per message.

    Reads only columns of ``ix_message_events_campaign_id_type_occurred_at`` (an index-only
    scan): events without a message are grouped by type and time instead of by id, ``n``
    counting them. Messages are joined within the campaign (its index) rather than the
    organization.
    """
    return f"""
WITH firsts AS (
    SELECT e.message_id, e.type, min(e.occurred_at) AS at, CASE WHEN e.message_id IS NULL THEN count(*) ELSE 1 END AS n
    FROM message_events e
    WHERE {_EVENTS_WHERE}{_window("e.occurred_at", since, until)}
    GROUP BY e.message_id, e.type, CASE WHEN e.message_id IS NULL THEN e.occurred_at END
)
SELECT
    GROUPING(m.step_id) AS g_step, GROUPING(m.variant) AS g_variant, GROUPING(m.channel) AS g_channel,
    GROUPING(date_trunc('hour', f.at)) AS g_hour,
    m.step_id, m.variant, m.channel, date_trunc('hour', f.at) AS hour,
    {_COUNTS}
FROM firsts f
LEFT JOIN messages m ON m.id = f.message_id AND m.campaign_id = :campaign
GROUP BY GROUPING SETS ((), (m.step_id), (m.step_id, m.variant), (m.channel), (date_trunc('hour', f.at)))
"""  # noqa: S608


def enrolled_sql(since: datetime | None = None, until: datetime | None = None) -> str:
    """Enrollments per hour of the campaign."""
    return f"""
SELECT date_trunc('hour', created_at) AS hour, count(*) AS n
FROM enrollments
WHERE org_id = :org AND campaign_id = :campaign{_window("created_at", since, until)}
GROUP BY 1
"""  # noqa: S608


def analytics_params(
    org_id: uuid.UUID, campaign_id: uuid.UUID, since: datetime | None, until: datetime | None
) -> dict[str, Any]:
    """The bind parameters of :func:`events_sql`, :func:`enrolled_sql` and :func:`count_sql`."""
    return {"org": org_id, "campaign": campaign_id, "since": since, "until": until, "types": list(METRICS)}


def _counts(row: Any) -> dict[str, int]:
    return {m: int(getattr(row, m)) for m in METRICS}


def _assemble(
    campaign_id: uuid.UUID,
    positions: dict[uuid.UUID, tuple[int, str]],
    since: datetime | None,
    until: datetime | None,
    rows: list[Any],
    enrolled: int,
    hourly: list[HourCounts],
) -> Analytics:
    """The response from the ``GROUPING SETS`` rows (totals, step, variant, channel) and the hours."""
    totals = Totals(enrolled=enrolled)
    by_step: list[StepCounts] = []
    by_variant: list[VariantCounts] = []
    by_channel: list[ChannelCounts] = []
    for row in rows:
        if not row.g_hour:
            continue
        counts = _counts(row)
        if row.g_step and row.g_variant and row.g_channel:
            totals = Totals(enrolled=enrolled, **counts)
        elif not row.g_step and row.g_variant:
            if row.step_id is not None:
                position, channel = positions.get(row.step_id, (None, None))
                by_step.append(StepCounts(step_id=row.step_id, position=position, channel=channel, **counts))
        elif not row.g_step and not row.g_variant:
            if row.step_id is not None:
                by_variant.append(VariantCounts(step_id=row.step_id, variant=row.variant, **counts))
        elif not row.g_channel and row.channel is not None:
            by_channel.append(ChannelCounts(channel=row.channel, **counts))
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
        hourly=hourly,
    )


_HOURS: TypeAdapter[list[HourCounts]] = TypeAdapter(list[HourCounts])


async def campaign_analytics(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    campaign_id: uuid.UUID,
    positions: dict[uuid.UUID, tuple[int, str]],
    since: datetime | None = None,
    until: datetime | None = None,
) -> Analytics:
    """Return the campaign's counts per campaign, step, variant, channel and hour, from the rollups only."""
    check_window(since, until)
    conn = await session.connection()
    params = analytics_params(org_id, campaign_id, since, until)
    rows = (await conn.execute(sa.text(rollups_sql(since, until)), params)).all()
    top = next(r for r in rows if r.hourly is not None)
    hourly = _HOURS.validate_json(top.hourly)
    return _assemble(campaign_id, positions, since, until, list(rows), int(top.enrolled), hourly)


async def campaign_analytics_from_events(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    campaign_id: uuid.UUID,
    positions: dict[uuid.UUID, tuple[int, str]],
) -> Analytics:
    """The same figures computed from the raw events and enrollments (the rollups' reference; whole campaign)."""
    params = analytics_params(org_id, campaign_id, None, None)
    conn = await session.connection()
    rows = (await conn.execute(sa.text(events_sql()), params)).all()
    enrolled_rows = (await conn.execute(sa.text(enrolled_sql()), params)).all()
    hourly = {r.hour: HourCounts(hour=r.hour, enrolled=int(r.n)) for r in enrolled_rows}
    for row in rows:
        if not row.g_hour and row.hour is not None:
            current = hourly.get(row.hour)
            hourly[row.hour] = HourCounts(hour=row.hour, enrolled=current.enrolled if current else 0, **_counts(row))
    enrolled = sum(h.enrolled for h in hourly.values())
    return _assemble(campaign_id, positions, None, None, list(rows), enrolled, [hourly[h] for h in sorted(hourly)])
