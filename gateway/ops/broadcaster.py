"""One polling loop per gateway process, fanned out to every live-stream subscriber.

The loop (started in the app's lifespan) reads the queue picture from Redis once a second
and the ledger every few seconds, and waits for live events with a blocking ``XREAD`` in
between, so Redis sees the same commands whether one browser watches or a thousand, and none
while nobody does. Each frame is serialized once and the same bytes go to every subscriber
that may see it. A subscriber has a small bounded buffer: one that falls behind is dropped
(its stream ends), so a client that stops reading can never make the gateway hold more.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import sqlalchemy as sa
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from redis import Redis
from redis.exceptions import RedisError

from libs import events, queue_stats
from libs.db.session import Database
from libs.queue import ALL_QUEUES

log = structlog.get_logger("gateway.ops")

CAMPAIGN_STATS = sa.text(
    """
    SELECT campaign_id, status, coalesce(hold_reason, '') AS hold_reason, count(*) AS n,
           count(*) FILTER (WHERE sent_at > now() - interval '1 minute') AS sent_1m,
           count(*) FILTER (WHERE sent_at > now() - interval '5 minutes') AS sent_5m,
           count(*) FILTER (WHERE sent_at > now() - interval '15 minutes') AS sent_15m
    FROM messages
    WHERE campaign_id = ANY(:ids) AND org_id = ANY(:orgs)
    GROUP BY campaign_id, status, coalesce(hold_reason, '')
    """
)
"""The ledger's picture of the watched campaigns, in one query whatever their number."""


def sse(event: str, data: Any) -> bytes:
    """One server-sent event frame."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


@dataclass(eq=False)
class Subscriber:
    """One stream: what it may see and its bounded buffer of frames."""

    org_id: uuid.UUID | None
    campaign_id: uuid.UUID | None
    inbox: MemoryObjectSendStream[bytes]
    outbox: MemoryObjectReceiveStream[bytes]
    dropped: bool = False

    @property
    def is_operator(self) -> bool:
        """Whether it watches everything (operators) rather than one campaign."""
        return self.campaign_id is None

    def offer(self, frame: bytes) -> bool:
        """Queue ``frame``; return False (and end the stream) when the buffer is full."""
        if self.dropped:
            return False
        try:
            self.inbox.send_nowait(frame)
        except anyio.WouldBlock:
            self.drop()
            return False
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.dropped = True
            return False
        return True

    def drop(self) -> None:
        """End the stream: the reader sees the end after the frames already queued."""
        self.dropped = True
        self.inbox.close()


def _may_see(event: events.LiveEvent) -> Callable[[Subscriber], bool]:
    """Operators see every event; a campaign's watchers only that campaign's, of their own organization."""

    def check(sub: Subscriber) -> bool:
        return sub.is_operator or (str(sub.org_id) == event.org_id and str(sub.campaign_id) == event.campaign_id)

    return check


def _watches(campaign_id: uuid.UUID) -> Callable[[Subscriber], bool]:
    def check(sub: Subscriber) -> bool:
        return sub.campaign_id == campaign_id

    return check


@dataclass
class Counters:
    """What the loop did (for tests, /api/ops/queues and /metrics)."""

    polls: int = 0
    ledger_polls: int = 0
    events: int = 0
    dropped: int = 0
    errors: int = 0


@dataclass
class Broadcaster:
    """The shared loop and its subscribers."""

    redis: Redis
    database: Database
    queues: Sequence[str] = ALL_QUEUES
    interval: float = 1.0
    ledger_interval: float = 5.0
    buffer: int = 32
    subscribers: set[Subscriber] = field(default_factory=set)
    counters: Counters = field(default_factory=Counters)
    latest: queue_stats.Snapshot | None = None
    _wake: anyio.Event = field(default_factory=anyio.Event)
    _unknown: tuple[int, list[queue_stats.UnknownMessage]] = (0, [])
    _campaigns: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    _ledger_at: float = -math.inf
    clock: Callable[[], float] = time.monotonic

    @asynccontextmanager
    async def subscribe(
        self, *, org_id: uuid.UUID | None = None, campaign_id: uuid.UUID | None = None
    ) -> AsyncIterator[Subscriber]:
        """Register a subscriber for the block; operators pass no campaign."""
        inbox, outbox = anyio.create_memory_object_stream[bytes](self.buffer)
        sub = Subscriber(org_id=org_id, campaign_id=campaign_id, inbox=inbox, outbox=outbox)
        self.subscribers.add(sub)
        if campaign_id is not None:
            self._ledger_at = -math.inf  # a new campaign: read the ledger on the next tick
        self._wake.set()
        if self.latest is not None and sub.is_operator:
            sub.offer(sse("snapshot", self._ops_payload(self.latest)))
        try:
            yield sub
        finally:
            self.subscribers.discard(sub)
            if not sub.dropped:
                sub.inbox.close()
            outbox.close()

    def _ops_payload(self, snapshot: queue_stats.Snapshot) -> dict[str, Any]:
        data = snapshot.as_json()
        data["unknown_count"], unknown = self._unknown
        data["unknown"] = [vars(m) for m in unknown]
        return data

    def _fan_out(self, frame: bytes, who: Callable[[Subscriber], bool]) -> None:
        for sub in list(self.subscribers):
            if who(sub) and not sub.offer(frame):
                self.subscribers.discard(sub)
                self.counters.dropped += 1
                log.info("stream_subscriber_dropped", campaign_id=str(sub.campaign_id) if sub.campaign_id else None)

    async def run(self) -> None:
        """Poll while anyone listens; sleep while nobody does."""
        cursor = "$"
        while True:
            if not self.subscribers:
                self._wake = anyio.Event()
                await self._wake.wait()
                cursor = "$"
            if cursor == "$":
                try:
                    cursor = await anyio.to_thread.run_sync(events.last_id, self.redis, abandon_on_cancel=True)
                except RedisError:
                    cursor = "$"
            deadline = self.clock() + self.interval
            try:
                await self.tick()
            except Exception as exc:  # a Redis or database hiccup must not end the loop
                self.counters.errors += 1
                log.warning("stream_poll_failed", error=type(exc).__name__)
            while (left := deadline - self.clock()) > 0.005 and self.subscribers:
                try:
                    cursor = await self._events(cursor, left)
                except RedisError as exc:
                    self.counters.errors += 1
                    log.warning("stream_events_failed", error=type(exc).__name__)
                    await anyio.sleep(left)

    async def _events(self, cursor: str, wait: float) -> str:
        after = cursor if cursor != "$" else "0-0"
        block_ms = max(1, int(wait * 1000))

        def read() -> tuple[str, list[events.LiveEvent]]:
            return events.read(self.redis, after, block_ms=block_ms)

        cursor, found = await anyio.to_thread.run_sync(read, abandon_on_cancel=True)
        for event in found:
            self.counters.events += 1
            frame = sse("event", event.as_json())
            self._fan_out(frame, _may_see(event))
        return cursor

    async def tick(self) -> None:
        """Take one snapshot and send it to everyone who may see it."""
        snapshot = await anyio.to_thread.run_sync(queue_stats.collect, self.redis, self.queues, abandon_on_cancel=True)
        self.counters.polls += 1
        if self.clock() - self._ledger_at >= self.ledger_interval:
            await self._read_ledger()
        snapshot.unknown_count, snapshot.unknown = self._unknown
        self.latest = snapshot
        if any(s.is_operator for s in self.subscribers):
            self._fan_out(sse("snapshot", self._ops_payload(snapshot)), lambda s: s.is_operator)
        for campaign_id, stats in self._campaigns.items():
            frame = sse("snapshot", {"at": snapshot.at, "campaign_id": str(campaign_id), **stats})
            self._fan_out(frame, _watches(campaign_id))

    async def _read_ledger(self) -> None:
        self._ledger_at = self.clock()
        self.counters.ledger_polls += 1
        watched = {(s.campaign_id, s.org_id) for s in self.subscribers if s.campaign_id is not None}
        async with self.database.system() as session:
            if any(s.is_operator for s in self.subscribers):
                self._unknown = await queue_stats.unknown_messages_async(session)
            campaigns: dict[uuid.UUID, dict[str, Any]] = {}
            if watched:
                ids = [c for c, _ in watched]
                orgs = list({o for _, o in watched})
                rows = (await (await session.connection()).execute(CAMPAIGN_STATS, {"ids": ids, "orgs": orgs})).all()
                for campaign_id, _ in watched:
                    campaigns[campaign_id] = {"messages": {}, "held_reasons": {}, "sent": {"1m": 0, "5m": 0, "15m": 0}}
                allowed = dict(watched)
                for row in rows:
                    if allowed.get(row.campaign_id) is None:
                        continue
                    entry = campaigns[row.campaign_id]
                    entry["messages"][row.status] = entry["messages"].get(row.status, 0) + int(row.n)
                    if row.status == "held" and row.hold_reason:
                        entry["held_reasons"][row.hold_reason] = int(row.n)
                    for window in ("1m", "5m", "15m"):
                        entry["sent"][window] += int(getattr(row, f"sent_{window}"))
            self._campaigns = campaigns
