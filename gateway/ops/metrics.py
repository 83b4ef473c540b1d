"""Prometheus metrics: the gateway's own traffic, the queues, job durations and the ledger's outcomes.

Request metrics are recorded on the proxy's hot path, so they cost a dict lookup of a
pre-built child and two lock-guarded additions per request: the label children for every
upstream and status class are created at start-up. Everything else is read when Prometheus
scrapes: queue depths from the broadcaster's latest snapshot (or a fresh read), durations
from the histogram the timeline in Redis keeps, and message counts from one grouped query on
the ledger, cached for a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import anyio
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis

from gateway.proxy import GatewayProxy, Receive, Send, Upstream
from libs import queue_stats

LEDGER_OUTCOMES = sa.text(
    """
    SELECT channel, status, coalesce(hold_reason, '') AS hold_reason, count(*) AS n
    FROM messages
    GROUP BY channel, status, coalesce(hold_reason, '')
    """
)
PAUSED_SENDERS = sa.text(
    """
    SELECT kind, coalesce(paused_rule, '') AS rule, count(*) AS n
    FROM senders WHERE paused_at IS NOT NULL
    GROUP BY kind, coalesce(paused_rule, '')
    """
)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class RequestMetrics:
    """Counters and a latency histogram per upstream and status class, children built up front."""

    def __init__(self, registry: CollectorRegistry, upstreams: Iterable[str]) -> None:
        self.requests = Counter(
            "tidewater_gateway_requests", "Requests the gateway answered.", ["upstream", "status"], registry=registry
        )
        self.latency = Histogram(
            "tidewater_gateway_request_seconds",
            "Time from the request to the end of the answer.",
            ["upstream"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        names = [*upstreams, "gateway"]
        self._counts = {(u, c): self.requests.labels(u, STATUS_CLASSES[c - 1]) for u in names for c in range(1, 6)}
        self._latency = {u: self.latency.labels(u) for u in names}

    def observe(self, upstream: str, status: int, seconds: float) -> None:
        """Record one answered request."""
        klass = status // 100
        child = self._counts.get((upstream, klass if 1 <= klass <= 5 else 5))
        if child is not None:
            child.inc()
            self._latency[upstream].observe(seconds)


class MeteredProxy(GatewayProxy):
    """The gateway proxy, counting each forwarded request by upstream and status class."""

    metrics: RequestMetrics | None = None

    async def forward(
        self, scope: dict[str, Any], receive: Receive, send: Send, upstream: Upstream, *, needs_token: bool
    ) -> int:
        """Forward as the proxy does, then record the status and the time taken."""
        metrics = self.metrics
        if metrics is None:
            return await super().forward(scope, receive, send, upstream, needs_token=needs_token)
        started = time.perf_counter()
        status = 0
        try:
            status = await super().forward(scope, receive, send, upstream, needs_token=needs_token)
        finally:
            metrics.observe(upstream.name, status or 499, time.perf_counter() - started)
        return status


class OpsCollector(Collector):
    """Read queue, duration and ledger metrics when Prometheus scrapes."""

    def __init__(self) -> None:
        self.queues: list[queue_stats.QueueStats] = []
        self.workers: list[queue_stats.WorkerStats] = []
        self.durations: dict[str, tuple[list[int], float, int]] = {}
        self.ledger: list[tuple[str, str, str, int]] = []
        self.paused: list[tuple[str, str, int]] = []
        self.stream: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        """Yield the metrics last loaded by :func:`refresh`."""
        depth = GaugeMetricFamily("tidewater_queue_jobs", "Jobs per queue and registry.", labels=["queue", "state"])
        oldest = GaugeMetricFamily(
            "tidewater_queue_oldest_waiting_seconds", "Age of the oldest waiting job.", labels=["queue"]
        )
        rate = GaugeMetricFamily(
            "tidewater_queue_throughput_per_minute", "Jobs ended per minute.", labels=["queue", "window"]
        )
        for q in self.queues:
            for state in ("queued", "started", "scheduled", "deferred", "failed", "canceled"):
                depth.add_metric([q.name, state], getattr(q, state))
            oldest.add_metric([q.name], q.oldest_waiting_seconds or 0.0)
            for window, value in q.throughput_per_minute.items():
                rate.add_metric([q.name, window], value)
        yield depth
        yield oldest
        yield rate
        workers = GaugeMetricFamily("tidewater_workers", "RQ workers by state.", labels=["state"])
        by_state: dict[str, int] = {}
        for w in self.workers:
            by_state[w.state] = by_state.get(w.state, 0) + 1
        for state, n in sorted(by_state.items()):
            workers.add_metric([state], n)
        yield workers
        hist = HistogramMetricFamily("tidewater_job_duration_seconds", "Run time of ended jobs.", labels=["queue"])
        bounds = [*(str(b) for b in queue_stats.DURATION_BUCKETS), "+Inf"]
        for name, (counts, total, _count) in sorted(self.durations.items()):
            cumulative, running = [], 0
            for bound, n in zip(bounds, counts, strict=True):
                running += n
                cumulative.append((bound, float(running)))
            hist.add_metric([name], cumulative, sum_value=total)
        yield hist
        messages = GaugeMetricFamily(
            "tidewater_messages", "Ledger messages by channel and status.", labels=["channel", "status"]
        )
        held = GaugeMetricFamily(
            "tidewater_messages_held", "Held-back messages by reason.", labels=["channel", "reason"]
        )
        totals: dict[tuple[str, str], int] = {}
        for channel, status, reason, n in self.ledger:
            totals[(channel, status)] = totals.get((channel, status), 0) + n
            if status == "held":
                held.add_metric([channel, reason or "unspecified"], n)
        for (channel, status), n in sorted(totals.items()):
            messages.add_metric([channel, status], n)
        yield messages
        yield held
        paused = GaugeMetricFamily(
            "tidewater_senders_paused", "Senders a health rule paused, by kind and rule.", labels=["kind", "rule"]
        )
        for kind, rule, n in self.paused:
            paused.add_metric([kind, rule or "unspecified"], n)
        yield paused
        stream = CounterMetricFamily("tidewater_stream", "Live-stream loop activity.", labels=["what"])
        for what, n in sorted(self.stream.items()):
            stream.add_metric([what], n)
        yield stream

    async def refresh(self, state: Any) -> None:
        """Load the scrape-time metrics (the snapshot from the broadcaster when fresh)."""
        broadcaster = state.get("broadcaster")
        redis: Redis = state.redis
        latest: queue_stats.Snapshot | None = broadcaster.latest if broadcaster is not None else None
        if latest is None or time.time() - latest.at > 5:
            latest = await anyio.to_thread.run_sync(queue_stats.collect, redis)
        self.queues, self.workers = latest.queues, latest.workers
        self.durations = await anyio.to_thread.run_sync(queue_stats.durations, redis)
        cached: tuple[float, list[tuple[str, str, str, int]], list[tuple[str, str, int]]] | None = state.get(
            "metrics_ledger"
        )
        ttl: float = state.settings.metrics_ledger_cache_seconds
        if cached is None or cached[0] < time.monotonic():
            async with state.db.system() as session:
                conn = await session.connection()
                rows = (await conn.execute(LEDGER_OUTCOMES)).all()
                senders = (await conn.execute(PAUSED_SENDERS)).all()
            self.ledger = [(r.channel, r.status, r.hold_reason, int(r.n)) for r in rows]
            self.paused = [(r.kind, r.rule, int(r.n)) for r in senders]
            state.metrics_ledger = (time.monotonic() + ttl, self.ledger, self.paused)
        else:
            self.ledger, self.paused = cached[1], cached[2]
        if broadcaster is not None:
            c = broadcaster.counters
            self.stream = {"polls": c.polls, "events": c.events, "dropped": c.dropped, "errors": c.errors}
