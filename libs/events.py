"""Live events: what the workers tell the operators' and customers' live streams, through Redis.

Events go to one capped Redis stream (``XADD ... MAXLEN ~``): readers that join late or lag
a moment lose nothing recent, a stream with no reader costs a bounded amount of memory, and
the gateway reads it with one ``XREAD`` per poll however many browsers watch. Events are
hints for live views, never the truth: the ledger in PostgreSQL is. Publishing never raises,
so a Redis hiccup cannot fail a send that already happened.

Events carry ids and small enums only (no lead data): ``org_id`` and ``campaign_id`` decide
who may see an event.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import structlog
from redis import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

STREAM_KEY = "tw:events"
"""The Redis stream every live event is appended to."""
STREAM_MAXLEN = 10_000
"""About how many events the stream keeps (trimmed approximately, which is cheap)."""


class EventKind(StrEnum):
    """What happened, as a live view shows it."""

    SENT = "sent"
    FAILED = "failed"
    HELD = "held"
    REPLIED = "replied"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One event as readers see it: ids, a kind, and a few small fields."""

    id: str
    kind: str
    org_id: str
    campaign_id: str
    at: float
    fields: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Return the event as the JSON a stream sends."""
        return {
            "id": self.id,
            "kind": self.kind,
            "org_id": self.org_id,
            "campaign_id": self.campaign_id,
            "at": self.at,
            **self.fields,
        }


_RESERVED = frozenset({"kind", "org_id", "campaign_id", "at"})


def _entry(
    kind: EventKind | str,
    *,
    org_id: uuid.UUID | str,
    campaign_id: uuid.UUID | str | None,
    extra: Mapping[str, object],
) -> dict[str, str]:
    entry = {
        "kind": str(kind),
        "org_id": str(org_id),
        "campaign_id": str(campaign_id) if campaign_id else "",
        "at": f"{time.time():.3f}",
    }
    for name, value in extra.items():
        if value is not None and name not in _RESERVED:
            entry[name] = str(value)[:200]
    return entry


def publish(
    redis: Redis,
    kind: EventKind | str,
    *,
    org_id: uuid.UUID | str,
    campaign_id: uuid.UUID | str | None,
    message_id: uuid.UUID | str | None = None,
    channel: str | None = None,
    reason: str | None = None,
    **extra: object,
) -> str | None:
    """Append one live event; return its stream id, or None when Redis refused (logged, never raised)."""
    entry = _entry(
        kind,
        org_id=org_id,
        campaign_id=campaign_id,
        extra={"message_id": message_id, "channel": channel, "reason": reason, **extra},
    )
    try:
        event_id = redis.xadd(STREAM_KEY, entry, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
    except RedisError as exc:
        log.warning("live_event_not_published", kind=str(kind), error=type(exc).__name__)
        return None
    return event_id.decode() if isinstance(event_id, bytes) else str(event_id)


def publish_many(redis: Redis, events: Sequence[Mapping[str, Any]]) -> int:
    """Append several events in one pipeline (each a mapping of :func:`publish`'s keywords plus ``kind``)."""
    if not events:
        return 0
    try:
        with redis.pipeline(transaction=False) as pipe:
            for event in events:
                data = dict(event)
                kind = data.pop("kind")
                org_id = data.pop("org_id")
                campaign_id = data.pop("campaign_id", None)
                pipe.xadd(
                    STREAM_KEY,
                    _entry(kind, org_id=org_id, campaign_id=campaign_id, extra=data),  # type: ignore[arg-type]
                    maxlen=STREAM_MAXLEN,
                    approximate=True,
                )
            pipe.execute()
    except RedisError as exc:
        log.warning("live_events_not_published", count=len(events), error=type(exc).__name__)
        return 0
    return len(events)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def parse(entries: Sequence[tuple[bytes | str, Mapping[bytes | str, bytes | str]]]) -> list[LiveEvent]:
    """Turn raw ``XREAD``/``XRANGE`` entries into events (malformed entries are skipped)."""
    events: list[LiveEvent] = []
    for raw_id, raw_fields in entries:
        data = {_text(k): _text(v) for k, v in raw_fields.items()}
        try:
            at = float(data.pop("at", "0"))
            kind = data.pop("kind")
            org_id = data.pop("org_id")
        except (KeyError, ValueError):
            continue
        campaign_id = data.pop("campaign_id", "")
        events.append(
            LiveEvent(id=_text(raw_id), kind=kind, org_id=org_id, campaign_id=campaign_id, at=at, fields=data)
        )
    return events


def last_id(redis: Redis) -> str:
    """Return the id of the newest event, or ``0-0`` when there is none (where a new reader starts)."""
    newest: Any = redis.xrevrange(STREAM_KEY, count=1)
    return _text(newest[0][0]) if newest else "0-0"


def read(redis: Redis, after: str, *, count: int = 1000, block_ms: int | None = None) -> tuple[str, list[LiveEvent]]:
    """Return events after ``after`` (waiting up to ``block_ms``) and the id to read from next time."""
    answer: Any = redis.xread({STREAM_KEY: after}, count=count, block=block_ms)
    if not answer:
        return after, []
    entries = answer[0][1]
    if not entries:
        return after, []
    return _text(entries[-1][0]), parse(entries)
