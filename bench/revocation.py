"""Benchmark the revocation check: token verifications/s with and without the Redis look-up.

Every authenticated request pays one ``MGET`` of the records its token names (session, person
or API key, membership). This measures that cost against a real Redis (``SDR_REDIS_URL``, or
``redis://127.0.0.1:6379/0``; nothing is written), and how long a revocation takes to be seen:
from the moment its record is written until the next verification refuses the token.

    uv run python bench/revocation.py
    uv run python bench/revocation.py --seconds 5 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on sys.path, and bench/gateway.py would shadow gateway/.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench"))]

from libs.errors import Unauthorized  # noqa: E402
from libs.security import (  # noqa: E402
    ALGORITHM,
    ISSUED_MS_CLAIM,
    KeySource,
    RevocationList,
    TokenVerifier,
    now_ms,
    session_record,
)


def _keys() -> tuple[Ed25519PrivateKey, KeySource, str]:
    private = Ed25519PrivateKey.generate()
    kid = uuid.uuid4().hex[:16]
    jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return private, KeySource(jwks={"keys": [{**jwk, "kid": kid, "alg": ALGORITHM}]}), kid


def _token(private: Ed25519PrivateKey, kid: str, sid: str) -> str:
    issued = now_ms()
    claims: dict[str, Any] = {
        "iss": "tidewater",
        "aud": "tidewater-api",
        "sub": str(uuid.uuid4()),
        "org": str(uuid.uuid4()),
        "role": "member",
        "iat": issued // 1000,
        ISSUED_MS_CLAIM: issued,
        "exp": issued // 1000 + 900,
        "jti": uuid.uuid4().hex,
        "sid": sid,
    }
    return jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": kid})


async def _rate(verifier: TokenVerifier, token: str, seconds: float, concurrency: int) -> tuple[float, list[float]]:
    done = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await verifier.verify(token)
            latencies.append(time.perf_counter() - started)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started), latencies


def _p(latencies: list[float], q: float) -> float:
    return statistics.quantiles(latencies, n=100)[int(q) - 1] * 1000 if len(latencies) > 100 else float("nan")


async def run(url: str, seconds: float, concurrency: int) -> None:
    private, keys, kid = _keys()
    revocations = RevocationList(url)
    plain = TokenVerifier(keys, issuer="tidewater", audience="tidewater-api")
    checked = TokenVerifier(keys, issuer="tidewater", audience="tidewater-api", revocations=revocations)
    token = _token(private, kid, sid=f"bench-{uuid.uuid4().hex}")
    print(f"{'verification':<28} {'per s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name, verifier in (("signature only", plain), ("signature + revocations", checked)):
        rate, latencies = await _rate(verifier, token, seconds, concurrency)
        print(f"{name:<28} {rate:>10.0f} {_p(latencies, 50):>8.3f} {_p(latencies, 99):>8.3f}")

    seen: list[float] = []
    for _ in range(20):
        sid = f"bench-{uuid.uuid4().hex}"
        victim = _token(private, kid, sid)
        await checked.verify(victim)
        started = time.perf_counter()
        await revocations.revoke([session_record(sid)], ttl=5)
        try:
            await checked.verify(victim)
            raise SystemExit("a revoked token was accepted")
        except Unauthorized:
            seen.append(time.perf_counter() - started)
    await revocations.aclose()
    print(
        f"\nrevoke -> first refusal: median {statistics.median(seen) * 1000:.2f} ms, "
        f"max {max(seen) * 1000:.2f} ms over {len(seen)} sessions"
    )


def main() -> None:
    """Parse the arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--redis-url", default=os.environ.get("SDR_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    asyncio.run(run(args.redis_url, args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
