"""Analytics rollups: counters kept as events land.

``campaign_rollups`` holds a row per (campaign, UTC hour, step, variant, channel, sender) with a
counter per metric. Database triggers (migration 0018) keep it as rows land in ``message_events`` and
``enrollments``, whichever process writes them, so analytics read a few thousand counters
instead of every event:

* an event with a message counts once per (message, metric), in the hour of the message's first
  event of that metric (``message_firsts`` remembers it): a second open is not counted, and a
  late event older than the remembered first moves the count to its own, earlier, hour;
* an event without a message (an opt-out by reply) counts once, in its hour;
* an enrollment counts as ``enrolled`` in the hour it was created.

An event id is its idempotency key (the primary key): an event delivered twice is inserted once.
The dimensions come from the message when the event lands (step, channel and variant are set
before a message goes out); the sender is the one the event names in ``data.sender_id``, if any.
:func:`rebuild` recomputes a campaign's counters from the raw rows (``sdr analytics rebuild``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from libs.db.base import org_id_field

METRICS = ("sent", "delivered", "opened", "clicked", "replied", "bounced", "unsubscribed", "failed")
"""The event types the rollups count (``held`` is a ledger state, not a metric)."""
ENROLLED = "enrolled"
"""The metric of an enrollment (counted from ``enrollments``, not from events)."""

COLUMNS = (*METRICS, ENROLLED)
"""The counters of a rollup row, one column each."""
ROLLUP_KEY = ("campaign_id", "hour", "step_id", "variant", "channel", "sender_id")
"""A rollup row's identity; NULLs are equal in it (PostgreSQL's ``NULLS NOT DISTINCT``)."""


def _counter() -> int:
    return Field(default=0, sa_type=sa.BigInteger, nullable=False, sa_column_kwargs={"server_default": sa.text("0")})


class CampaignRollup(SQLModel, table=True):
    """How many messages (or message-less events, or enrollments) had each metric first in ``hour``.

    One row per (campaign, hour, step, variant, channel, sender) with a column per metric: a
    campaign's month is a few thousand rows, whatever its number of events.
    """

    __tablename__ = "campaign_rollups"
    __table_args__ = (
        sa.Index("uq_campaign_rollups_key", *ROLLUP_KEY, unique=True, postgresql_nulls_not_distinct=True),
    )

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    org_id: uuid.UUID = org_id_field()
    campaign_id: uuid.UUID = Field(foreign_key="campaigns.id", nullable=False, ondelete="CASCADE")
    hour: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    step_id: uuid.UUID | None = Field(default=None)
    variant: str | None = Field(default=None, max_length=32)
    channel: str | None = Field(default=None, max_length=16)
    sender_id: uuid.UUID | None = Field(default=None)
    sent: int = _counter()
    delivered: int = _counter()
    opened: int = _counter()
    clicked: int = _counter()
    replied: int = _counter()
    bounced: int = _counter()
    unsubscribed: int = _counter()
    failed: int = _counter()
    enrolled: int = _counter()


class MessageFirst(SQLModel, table=True):
    """A message's first event of one metric: what makes unique counts exact and movable."""

    __tablename__ = "message_firsts"
    __table_args__ = (sa.Index("ix_message_firsts_campaign_id", "campaign_id"),)

    message_id: uuid.UUID = Field(primary_key=True)
    metric: str = Field(primary_key=True, max_length=16)
    org_id: uuid.UUID = org_id_field()
    campaign_id: uuid.UUID = Field(foreign_key="campaigns.id", nullable=False, ondelete="CASCADE")
    event_id: uuid.UUID = Field(nullable=False)
    occurred_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    step_id: uuid.UUID | None = Field(default=None)
    variant: str | None = Field(default=None, max_length=32)
    channel: str | None = Field(default=None, max_length=16)
    sender_id: uuid.UUID | None = Field(default=None)


_METRICS_ARRAY = "ARRAY[" + ", ".join(f"'{m}'" for m in METRICS) + "]"
_CAMPAIGN = "(CAST(:campaign AS uuid) IS NULL OR {col} = CAST(:campaign AS uuid))"

REBUILD_SQL: tuple[str, ...] = (
    # Writers wait (their triggers upsert these tables) while a rebuild runs; readers do not.
    "LOCK TABLE campaign_rollups, message_firsts IN EXCLUSIVE MODE",
    f"DELETE FROM campaign_rollups WHERE {_CAMPAIGN.format(col='campaign_id')}",  # noqa: S608
    f"DELETE FROM message_firsts WHERE {_CAMPAIGN.format(col='campaign_id')}",  # noqa: S608
    f"""
    INSERT INTO message_firsts (message_id, metric, org_id, campaign_id, event_id, occurred_at, step_id, variant,
                                channel, sender_id)
    SELECT DISTINCT ON (e.message_id, e.type) e.message_id, e.type, e.org_id, e.campaign_id, e.id, e.occurred_at,
           m.step_id, m.variant, m.channel, rollup_sender(e.data)
    FROM message_events e
    LEFT JOIN messages m ON m.id = e.message_id AND m.campaign_id = e.campaign_id
    WHERE e.message_id IS NOT NULL AND e.campaign_id IS NOT NULL AND e.type = ANY({_METRICS_ARRAY})
      AND {_CAMPAIGN.format(col="e.campaign_id")}
    ORDER BY e.message_id, e.type, e.occurred_at, e.id
    """,  # noqa: S608
    f"""
    INSERT INTO campaign_rollups (org_id, campaign_id, hour, step_id, variant, channel, sender_id, {", ".join(COLUMNS)})
    SELECT org_id, campaign_id, hour, step_id, variant, channel, sender_id,
           {", ".join(f"count(*) FILTER (WHERE metric = '{c}')" for c in COLUMNS)}
    FROM (
        SELECT org_id, campaign_id, step_id, variant, channel, sender_id,
               date_trunc('hour', occurred_at, 'UTC') AS hour, metric
        FROM message_firsts WHERE {_CAMPAIGN.format(col="campaign_id")}
        UNION ALL
        SELECT org_id, campaign_id, NULL, NULL, NULL, rollup_sender(data), date_trunc('hour', occurred_at, 'UTC'),
               type
        FROM message_events
        WHERE message_id IS NULL AND campaign_id IS NOT NULL AND type = ANY({_METRICS_ARRAY})
          AND {_CAMPAIGN.format(col="campaign_id")}
        UNION ALL
        SELECT org_id, campaign_id, NULL, NULL, NULL, NULL, date_trunc('hour', created_at, 'UTC'), '{ENROLLED}'
        FROM enrollments WHERE {_CAMPAIGN.format(col="campaign_id")}
    ) x
    GROUP BY org_id, campaign_id, hour, step_id, variant, channel, sender_id
    """,  # noqa: S608
)
"""Recompute the counters of one campaign (``:campaign``), or of every campaign (``NULL``), from the raw rows."""


def rebuild(conn: sa.Connection, campaign_id: uuid.UUID | None = None) -> None:
    """Recompute the rollups of ``campaign_id`` (every campaign when ``None``) in ``conn``'s transaction."""
    for sql in REBUILD_SQL:
        conn.execute(sa.text(sql), {"campaign": campaign_id})
