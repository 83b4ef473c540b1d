"""Benchmark the auth service: logins/s and token verifications/s, with the argon2 cost beside them.

Everything runs in this process against a real PostgreSQL (a scratch database, dropped at the
end) and Redis: the auth app and, when ``gateway/`` is installed, the gateway in front of it,
both driven through ``httpx.ASGITransport``. Each phase runs for ``--seconds`` (default 3), so
the whole run takes well under a minute.

    uv run python bench/auth.py
    uv run python bench/auth.py --seconds 5 --concurrency 16

Phases:
- argon2id: the parameters and the cost of one hash and one verification;
- logins/s: ``POST /api/auth/login`` (one argon2 verification each, capped by ``hash_concurrency``);
- verifications/s: ``libs.security.TokenVerifier.verify`` on a token from the service, keys from its JWKS;
- through the gateway: ``GET /api/auth/me`` with a bearer token (edge verification, then the
  service verifies again and reads the database), the same with an API key (exchanged once and
  cached at the edge), and forged tokens the edge refuses on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from litestar.testing import AsyncTestClient

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on sys.path, and bench/gateway.py would shadow gateway/.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench"))]

from libs.db.migrate import upgrade  # noqa: E402
from libs.security import KeySource, TokenVerifier  # noqa: E402
from libs.settings import Environment, normalize_database_url  # noqa: E402
from services.auth.app import build_context, create_app  # noqa: E402
from services.auth.settings import AuthSettings  # noqa: E402
from tests.support.servers import create_database, drop_database, redis_server  # noqa: E402

PASSWORD = "bench passphrase long enough"


def argon2_cost(settings: AuthSettings, rounds: int = 5) -> tuple[dict[str, int], float, float]:
    """Return the argon2id parameters and the median seconds of one hash and one verification."""
    passwords = build_context(settings).passwords
    hashes, verifies = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        phc = passwords.hasher.hash(PASSWORD)
        hashes.append(time.perf_counter() - started)
        started = time.perf_counter()
        passwords.hasher.verify(phc, PASSWORD)
        verifies.append(time.perf_counter() - started)
    return passwords.parameters, statistics.median(hashes), statistics.median(verifies)


async def drive(seconds: float, concurrency: int, call: Callable[[], Awaitable[bool]]) -> tuple[int, int, list[float]]:
    """Run ``call`` from ``concurrency`` tasks for ``seconds``; return (ok, failed, latencies)."""
    ok = failed = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal ok, failed
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if await call():
                ok += 1
            else:
                failed += 1
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, failed, latencies


def report(name: str, seconds: float, result: tuple[int, int, list[float]], note: str = "") -> None:
    """Print one line: rate, failures and latency percentiles."""
    ok, failed, latencies = result
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else 0.0
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0
    print(f"{name:<44} {ok / seconds:>9,.0f}/s  failed {failed:<5} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  {note}")


async def run(settings: AuthSettings, seconds: float, concurrency: int) -> None:
    """Sign up one account, then measure each phase."""
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            AsyncTestClient(app=create_app(settings), base_url="http://auth.local")
        )
        email = f"bench-{os.getpid()}@example.com"
        r = await client.post(
            "/api/auth/signup", json={"email": email, "password": PASSWORD, "organization_name": "Bench"}
        )
        r.raise_for_status()
        session = r.json()
        token = session["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        key = (
            await client.post("/api/auth/api-keys", json={"name": "bench", "scopes": ["*"]}, headers=headers)
        ).json()["key"]

        async def login() -> bool:
            r = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
            return r.status_code == 200

        report(
            "logins (POST /api/auth/login)",
            seconds,
            await drive(seconds, concurrency, login),
            f"hash_concurrency={settings.hash_concurrency}",
        )

        jwks = (await client.get("/api/auth/jwks.json")).json()
        verifier = TokenVerifier(KeySource(jwks=jwks), issuer=settings.jwt_issuer, audience=settings.jwt_audience)

        async def verify() -> bool:
            await verifier.verify(token)
            return True

        report("token verifications (TokenVerifier)", seconds, await drive(seconds, 1, verify), "one task, no I/O")

        async def me_direct() -> bool:
            return (await client.get("/api/auth/me", headers=headers)).status_code == 200

        report("GET /api/auth/me at the service", seconds, await drive(seconds, concurrency, me_direct))

        try:
            from gateway.app import asgi_lifespan
            from gateway.app import create_app as create_gateway
            from gateway.settings import GatewaySettings
        except ImportError as exc:
            print(f"gateway/ is not available ({exc}): skipping the phases through the gateway")
            return
        upstream = create_app(settings)  # the gateway runs its own copy of the service in process
        gateway_settings = GatewaySettings(
            env=Environment.TEST,
            database_url=settings.database_url,
            redis_url=settings.redis_url,
            log_level="WARNING",
        )
        gateway = create_gateway(gateway_settings, upstream_apps={"auth": upstream})
        await stack.enter_async_context(asgi_lifespan(gateway))
        edge = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gateway")  # type: ignore[arg-type]
        )
        key_headers = {"Authorization": f"Bearer {key}"}
        forged_headers = {"Authorization": f"Bearer {token[:-4]}AAAA"}

        async def me_edge() -> bool:
            return (await edge.get("/api/auth/me", headers=headers)).status_code == 200

        async def me_key() -> bool:
            return (await edge.get("/api/auth/me", headers=key_headers)).status_code == 200

        async def refused() -> bool:
            return (await edge.get("/api/auth/me", headers=forged_headers)).status_code == 401

        report("GET /api/auth/me through the gateway", seconds, await drive(seconds, concurrency, me_edge))
        report("  same, with an API key", seconds, await drive(seconds, concurrency, me_key), "exchange cached")
        report("  forged token, refused at the edge", seconds, await drive(seconds, concurrency, refused))


def main() -> None:
    """Parse arguments, prepare a scratch database, run, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="Length of each phase.")
    parser.add_argument("--concurrency", type=int, default=8, help="Concurrent clients per phase.")
    parser.add_argument(
        "--server",
        default=os.environ.get("SDR_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="A PostgreSQL server URL; a scratch database is created and dropped on it.",
    )
    args = parser.parse_args()
    server = normalize_database_url(args.server)
    url = create_database(server, prefix="tw_bench_auth")
    try:
        upgrade(url)
        with redis_server(Path(".data")) as redis_url:
            settings = AuthSettings(
                env=Environment.TEST,
                database_url=url,
                redis_url=redis_url,
                log_level="WARNING",
                hash_concurrency=os.cpu_count() or 2,
            )
            params, hash_s, verify_s = argon2_cost(settings)
            print(
                f"argon2id m={params['memory_kib']} KiB t={params['time_cost']} p={params['parallelism']}: "
                f"hash {hash_s * 1000:.1f} ms, verify {verify_s * 1000:.1f} ms "
                f"(ceiling ~{(os.cpu_count() or 1) / verify_s:,.0f} logins/s on {os.cpu_count()} cores)"
            )
            asyncio.run(run(settings, args.seconds, args.concurrency))
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (shared cores)")
    finally:
        drop_database(server, url)


if __name__ == "__main__":
    main()
