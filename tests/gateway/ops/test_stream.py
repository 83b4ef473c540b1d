"""Live streams over real HTTP: one poll loop for every subscriber, bounded memory, tenant isolation."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest
from redis import Redis

from libs import events
from libs.security import Role
from tests.conftest import REDIS_TEST_DB
from tests.gateway.apps import signer_env
from tests.gateway.ops.conftest import run_jobs
from tests.gateway.ops.factories import seed_campaign
from tests.gateway.processes import App, Server, _start, _wait_healthy
from tests.support.servers import free_port
from tests.support.tokens import TokenSigner

pytestmark = pytest.mark.e2e

SUBSCRIBERS = 200
WATCH_SECONDS = 10.0
START_SECONDS = 90.0
"""The shared 2-core machine can be busy: the gateway imports Flask, RQ and SQLAlchemy before it answers."""


@pytest.fixture
def gateway(tmp_path: Path, database_url: str, redis_url: str, signer: TokenSigner) -> Iterator[Server]:
    auth = App("tests.gateway.ops.apps:create_auth_app", tmp_path / "auth.log", signer_env(signer))
    dead = f"http://127.0.0.1:{free_port()}"
    env = {
        "SDR_ENV": "test",
        "SDR_DATABASE_URL": database_url,
        "SDR_REDIS_URL": redis_url,
        "SDR_AUTH_URL": auth.url,
        "SDR_BRAND_URL": dead,
        "SDR_CAMPAIGN_URL": dead,
        "SDR_OPS_LEDGER_INTERVAL": "1.0",
        "SDR_LOG_LEVEL": "WARNING",
    }
    servers = [_start(app) for app in (auth, App("gateway.app:create_app", tmp_path / "gateway.log", env))]
    try:
        deadline = time.monotonic() + START_SECONDS
        for server in servers:
            _wait_healthy(server, deadline)
        yield servers[1]
    finally:
        for server in servers:
            server.stop()


class Monitor:
    """Count the commands Redis runs on this test's database (MONITOR, filtered by db)."""

    def __init__(self, url: str) -> None:
        self.client = Redis.from_url(url)
        self.commands: Counter[str] = Counter()
        self.keys: Counter[tuple[str, str]] = Counter()
        self.counting = False
        self._monitor = self.client.monitor()
        self._conn = self._monitor.__enter__()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for command in self._conn.listen():
                if not self.counting or int(command.get("db", -1)) != REDIS_TEST_DB:
                    continue
                words = command["command"].split(" ")
                name = words[0].upper()
                self.commands[name] += 1
                if len(words) > 1:
                    self.keys[(name, words[1].strip('"'))] += 1
        except Exception:
            return  # the connection was closed at the end of the test

    def close(self) -> None:
        self.counting = False
        try:
            self._conn.connection.disconnect()
        finally:
            self.client.close()
        self._thread.join(timeout=5)


async def _subscribe(port: int, token: str, seconds: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/ops/queues/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    snapshots = 0
    deadline = time.monotonic() + seconds
    buffer = b""
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout=left)
            except TimeoutError:
                break
            if not chunk:
                break
            buffer += chunk
            snapshots += buffer.count(b"event: snapshot\n")
            buffer = buffer[buffer.rfind(b"\n") + 1 :] if b"\n" in buffer else buffer
    finally:
        writer.close()
    counts.append(snapshots)


def _stalled_subscriber(port: int, token: str) -> socket.socket:
    """A client that asks for the stream and never reads a byte."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /api/ops/queues/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    return sock


def test_two_hundred_subscribers_share_one_poll_loop_and_a_stalled_one_costs_nothing(
    gateway: Server, redis: Redis, redis_url: str, signer: TokenSigner
) -> None:
    run_jobs(redis)
    token = signer.mint(org_id=uuid.UUID(int=1), operator=True, role=Role.MEMBER, ttl=3600)
    process = psutil.Process(gateway.process.pid)
    stalled = [_stalled_subscriber(gateway.port, token) for _ in range(3)]
    monitor = Monitor(redis_url)
    counts: list[int] = []
    rss: list[int] = []

    async def watch() -> None:
        async def sample() -> None:
            await asyncio.sleep(2.0)  # everyone is connected and the loop is warm
            rss.append(process.memory_info().rss)
            monitor.counting = True
            await asyncio.sleep(WATCH_SECONDS - 2.5)
            monitor.counting = False
            rss.append(process.memory_info().rss)

        await asyncio.gather(
            sample(), *(_subscribe(gateway.port, token, WATCH_SECONDS, counts) for _ in range(SUBSCRIBERS))
        )

    try:
        asyncio.run(watch())
    finally:
        monitor.close()
        for sock in stalled:
            sock.close()

    assert len(counts) == SUBSCRIBERS
    assert min(counts) >= WATCH_SECONDS - 3, sorted(counts)[:5]
    # One loop: the queue is read once per tick (about 7.5 ticks in the counted window), not once per subscriber.
    ticks = monitor.keys[("LLEN", "rq:queue:email")]
    assert 5 <= ticks <= 10, monitor.keys.most_common(10)
    assert monitor.commands["XREAD"] <= 3 * ticks
    per_tick = sum(monitor.commands.values()) / ticks
    assert per_tick < 120, monitor.commands.most_common(15)
    growth = rss[1] - rss[0]
    assert growth < 16 * 1024 * 1024, f"gateway grew by {growth / 1e6:.1f} MB"

    stats = httpx.get(f"{gateway.url}/api/ops/queues", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert stats["stream"]["polls"] >= WATCH_SECONDS - 2


def _read_stream(url: str, token: str, *, until: Any, seconds: float = 8.0) -> list[tuple[str, dict[str, Any]]]:
    """Read server-sent events until ``until(events)`` is true or the time is up."""
    seen: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + seconds
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=seconds) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                seen.append((kind, json.loads(line[6:])))
                if until(seen):
                    break
            if time.monotonic() > deadline:
                break
    return seen


def test_a_customer_stream_shows_only_its_own_campaign(
    gateway: Server, redis: Redis, database_url: str, signer: TokenSigner
) -> None:
    from libs.db.session import make_engine

    engine = make_engine(database_url, pool_size=1)
    try:
        ours = seed_campaign(engine, statuses=["sent", "held", "queued"], hold_reason="quiet_hours")
        theirs = seed_campaign(engine, statuses=["sent", "sent", "failed"])
    finally:
        engine.dispose()
    token = signer.mint(org_id=ours.org_id, role=Role.VIEWER, ttl=600)

    forbidden = httpx.get(
        f"{gateway.url}/api/campaigns/{theirs.campaign_id}/stream", headers={"Authorization": f"Bearer {token}"}
    )
    assert forbidden.status_code == 404
    assert forbidden.json()["code"] == "NotFound"
    assert httpx.get(f"{gateway.url}/api/campaigns/{ours.campaign_id}/stream").status_code == 401
    assert (
        httpx.get(
            f"{gateway.url}/api/campaigns/not-a-uuid/stream", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 400
    )

    def publish_soon() -> None:
        time.sleep(1.5)
        events.publish(
            redis, "sent", org_id=theirs.org_id, campaign_id=theirs.campaign_id, message_id=theirs.message_ids[0]
        )
        events.publish(redis, "sent", org_id=theirs.org_id, campaign_id=ours.campaign_id, message_id=uuid.uuid4())
        events.publish(redis, "held", org_id=ours.org_id, campaign_id=ours.campaign_id, reason="quiet_hours")
        events.publish(
            redis, "replied", org_id=ours.org_id, campaign_id=ours.campaign_id, message_id=ours.message_ids[0]
        )

    publisher = threading.Thread(target=publish_soon)
    publisher.start()
    url = f"{gateway.url}/api/campaigns/{ours.campaign_id}/stream"
    seen = _read_stream(url, token, until=lambda s: sum(k == "event" for k, _ in s) >= 2 and s[-1][0] == "snapshot")
    publisher.join()

    snapshots = [d for k, d in seen if k == "snapshot"]
    live = [d for k, d in seen if k == "event"]
    assert snapshots
    assert {d["campaign_id"] for d in snapshots} == {str(ours.campaign_id)}
    assert snapshots[-1]["messages"] == {"sent": 1, "held": 1, "queued": 1}
    assert snapshots[-1]["held_reasons"] == {"quiet_hours": 1}
    assert snapshots[-1]["sent"]["15m"] == 1
    assert [e["kind"] for e in live] == ["held", "replied"]
    assert {(e["org_id"], e["campaign_id"]) for e in live} == {(str(ours.org_id), str(ours.campaign_id))}
    text = json.dumps(seen)
    assert str(theirs.campaign_id) not in text
    assert str(theirs.org_id) not in text


def test_the_operator_stream_sends_snapshots_and_every_event(
    gateway: Server, redis: Redis, signer: TokenSigner
) -> None:
    run_jobs(redis)
    token = signer.mint(org_id=uuid.UUID(int=1), operator=True, role=Role.MEMBER)
    assert httpx.get(f"{gateway.url}/api/ops/queues/stream").status_code == 401
    customer = signer.mint(org_id=uuid.UUID(int=2), role=Role.OWNER)
    assert (
        httpx.get(f"{gateway.url}/api/ops/queues/stream", headers={"Authorization": f"Bearer {customer}"}).status_code
        == 403
    )

    def publish_soon() -> None:
        time.sleep(1.0)
        events.publish(redis, "failed", org_id=uuid.uuid4(), campaign_id=uuid.uuid4(), channel="sms")

    publisher = threading.Thread(target=publish_soon)
    publisher.start()
    seen = _read_stream(
        f"{gateway.url}/api/ops/queues/stream", token, until=lambda s: any(k == "event" for k, _ in s) and len(s) >= 3
    )
    publisher.join()
    snapshot = next(d for k, d in seen if k == "snapshot")
    email = next(q for q in snapshot["queues"] if q["name"] == "email")
    assert (email["queued"], email["failed"]) == (2, 2)
    assert "unknown_count" in snapshot
    [event] = [d for k, d in seen if k == "event"]
    assert (event["kind"], event["channel"]) == ("failed", "sms")


async def test_a_subscriber_that_falls_behind_is_dropped(redis: Redis, database_url: str) -> None:
    from gateway.ops.broadcaster import Broadcaster
    from libs.db.session import Database

    database = Database.from_url(database_url, pool_size=1)
    try:
        broadcaster = Broadcaster(redis=redis, database=database, interval=0.01, ledger_interval=60, buffer=4)
        async with broadcaster.subscribe() as slow, broadcaster.subscribe() as fast:
            for _ in range(10):
                await broadcaster.tick()
                with anyio.move_on_after(0.5):
                    await fast.outbox.receive()
            assert slow.dropped
            assert not fast.dropped
            assert broadcaster.counters.dropped == 1
            assert slow not in broadcaster.subscribers
            frames = [frame async for frame in slow.outbox]
            assert len(frames) == 4, "it keeps what it had, then its stream ends"
    finally:
        await database.dispose()
