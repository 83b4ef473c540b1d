"""Measure the gateway against calling a backend directly and against nginx proxying the same backend.

Run ``uv run python bench/gateway.py`` (about a minute; ``--help`` for options). A plain Litestar
backend and the gateway run as separate uvicorn processes on loopback; a load client drives them
for a fixed time:

- (a) a small JSON endpoint at 1 and 64 concurrent clients,
- (b) an endpoint that waits 5 ms (like a database call) at 16 clients,

first directly, then through nginx (Debian's package, one worker process with keep-alive upstream
connections, like the gateway's single process) when it is installed, then through the gateway once
per candidate transport, and prints the ratios against the goals.

The load client is ``wrk`` (Debian's package, written in C) when it is installed and ``--client``
does not say otherwise, else an asyncio client (raw HTTP/1.1 over keep-alive connections). The
asyncio client saturates its own core before the gateway does at 64 clients, which flatters every
ratio; the first line of the output names the client used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRANSPORTS = ("raw", "aiohttp", "httpx-aiohttp", "httpx")
SERVERS = ("uvicorn", "granian")


def create_backend() -> Any:
    """Build the plain Litestar backend the benchmark calls (``uvicorn bench.gateway:create_backend --factory``)."""
    from litestar import Litestar, get

    @get("/bench/small", sync_to_thread=False)
    def small() -> dict[str, Any]:
        return {"id": 1, "name": "small", "ok": True}

    @get("/bench/slow")
    async def slow() -> dict[str, Any]:
        await asyncio.sleep(0.005)
        return {"id": 2, "name": "slow", "ok": True}

    @get("/healthz", sync_to_thread=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(route_handlers=[small, slow, healthz], openapi_config=None, debug=False)


def free_port() -> int:
    """Return a loopback port that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes], deadline: float = 60.0) -> None:
    """Wait until ``GET /healthz`` answers 200 on ``port``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def server_command(server: str, target: str, port: int) -> list[str]:
    """Command line serving the ASGI factory ``target`` on ``port``."""
    if server == "granian":
        return [
            sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--loop", "uvloop",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-ws", target,
        ]  # fmt: skip
    return [
        sys.executable, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning", "--lifespan", "on",
    ]  # fmt: skip


@contextmanager
def serve(server: str, target: str, port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run ``target`` in its own process for the duration of the block; always stop it."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        server_command(server, target, port),
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        try:
            wait_ready(port, process)
        except RuntimeError:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that waits for one Content-Length response at a time."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.need: int | None = None
        self.status = 0
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[: end + 2]).lower()
            self.status = int(head[9:12])
            start = head.find(b"content-length:")
            length = int(head[start + 15 : head.find(b"\r\n", start)].strip()) if start >= 0 else 0
            self.need = end + 4 + length
        if len(self.buffer) >= self.need:
            del self.buffer[: self.need]
            self.need = None
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(self.status)

    async def get(self, request: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


@dataclass
class Result:
    """What one load run measured."""

    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    quantiles: tuple[float, float] | None = None  # (p50, p99) in seconds, when the client reports only those

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        """Latency at quantile ``q`` in milliseconds."""
        if self.quantiles is not None and q in (0.5, 0.99):
            return self.quantiles[0 if q == 0.5 else 1] * 1000
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def p50(self) -> float:
        """Median latency in milliseconds."""
        if self.quantiles is not None:
            return self.quantiles[0] * 1000
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")


async def load(port: int, path: str, clients: int, seconds: float, warmup: float) -> Result:
    """Drive ``GET path`` from ``clients`` keep-alive connections for ``seconds`` (after ``warmup``)."""
    loop = asyncio.get_running_loop()
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench\r\n\r\n".encode()
    connections = [(await loop.create_connection(_Connection, "127.0.0.1", port))[1] for _ in range(clients)]
    latencies: list[float] = []
    counts = [0, 0]
    measuring = False

    async def client(conn: _Connection, stop_at: float) -> None:
        perf = time.perf_counter
        while perf() < stop_at:
            started = perf()
            status = await conn.get(request)
            if measuring:
                latencies.append(perf() - started)
                counts[0 if status == 200 else 1] += 1

    now = time.perf_counter()
    await asyncio.gather(*(client(c, now + warmup) for c in connections))
    measuring = True
    started = time.perf_counter()
    await asyncio.gather(*(client(c, started + seconds) for c in connections))
    elapsed = time.perf_counter() - started
    for conn in connections:
        if conn.transport is not None:
            conn.transport.close()
    return Result(requests=counts[0], errors=counts[1], seconds=elapsed, latencies=latencies)


SCENARIOS = (("a", "/bench/small", 1), ("a", "/bench/small", 64), ("b", "/bench/slow", 16))


_WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _wrk_seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _WRK_UNITS[unit]


def load_wrk(port: int, path: str, clients: int, seconds: float, warmup: float) -> Result:
    """Drive ``GET path`` with wrk from ``clients`` keep-alive connections (after a ``warmup`` run).

    wrk reports percentiles rather than every sample; the result carries the p50 and p99 it printed.
    """
    url = f"http://127.0.0.1:{port}{path}"
    threads = str(min(clients, 2))
    if warmup > 0:  # wrk takes whole seconds
        subprocess.run(
            ["wrk", "-t", threads, "-c", str(clients), "-d", f"{max(1, round(warmup))}s", url], capture_output=True
        )
    out = subprocess.run(
        ["wrk", "-t", threads, "-c", str(clients), "-d", f"{max(1, round(seconds))}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in ([0-9.]+)(us|ms|s|m)", out).group(1))  # type: ignore[union-attr]
    span = re.search(r"requests in ([0-9.]+(?:us|ms|s|m))", out).group(1)  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = _wrk_seconds(re.search(r"\s50%\s+([0-9.]+(?:us|ms|s|m))", out).group(1))  # type: ignore[union-attr]
    p99 = _wrk_seconds(re.search(r"\s99%\s+([0-9.]+(?:us|ms|s|m))", out).group(1))  # type: ignore[union-attr]
    bad = int(errors.group(1)) if errors else 0
    return Result(requests=requests - bad, errors=bad, seconds=_wrk_seconds(span), latencies=[], quantiles=(p50, p99))


def run_scenarios(port: int, seconds: float, warmup: float, client: str = "asyncio") -> dict[tuple[str, int], Result]:
    """Run every scenario against ``port`` with ``client`` (``wrk`` or ``asyncio``)."""
    results: dict[tuple[str, int], Result] = {}
    for _, path, clients in SCENARIOS:
        if client == "wrk":
            results[(path, clients)] = load_wrk(port, path, clients, seconds, warmup)
        else:
            results[(path, clients)] = asyncio.run(load(port, path, clients, seconds, warmup))
    return results


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""


@contextmanager
def nginx(backend: int, port: int) -> Iterator[None]:
    """Run nginx (one worker) proxying ``backend`` on ``port`` for the duration of the block."""
    with tempfile.TemporaryDirectory() as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, backend=backend, port=port))
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        process = subprocess.Popen([binary, "-p", prefix, "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, process)
            yield
        finally:
            process.terminate()
            process.wait(timeout=10)


def _line(label: str, r: Result) -> str:
    errors = f"  errors={r.errors}" if r.errors else ""
    return f"    {label:<28} {r.rps:>9.0f} req/s   p50 {r.p50:6.2f} ms   p99 {r.percentile(0.99):6.2f} ms{errors}"


Results = dict[tuple[str, int], Result]


def report(direct: Results, via: dict[str, Results], baseline: Results | None = None) -> list[dict[str, Any]]:
    """Print every figure and the ratios against the goals; return them as rows.

    Goals: at 64 clients at least 80% of nginx's throughput (when nginx ran), at one client at
    most 0.08 ms added to the direct p50, and with a 5 ms backend at least 85% of direct with the
    median at most 15% above it.
    """
    rows: list[dict[str, Any]] = []
    for case, path, clients in SCENARIOS:
        d = direct[(path, clients)]
        n = baseline[(path, clients)] if baseline else None
        print(f"\n({case}) GET {path} with {clients} concurrent client(s)")
        print(_line("direct", d))
        if n is not None:
            print(_line("nginx", n))
            print(f"    {'':<28} {n.rps / d.rps:>9.1%} of direct, p50 +{n.p50 - d.p50:.3f} ms")
        for name, results in via.items():
            g = results[(path, clients)]
            ratio = g.rps / d.rps if d.rps else 0.0
            of_nginx = g.rps / n.rps if n is not None and n.rps else None
            added = g.p50 - d.p50
            added_pct = added / d.p50 * 100 if d.p50 else float("nan")
            goals = []
            if case == "a" and clients == 64 and of_nginx is not None:
                goals.append(("throughput >= 80% of nginx", of_nginx >= 0.80))
            if case == "a" and clients == 1:
                goals.append(("added p50 <= 0.08 ms", added <= 0.08))
            if case == "b":
                goals.append(("throughput >= 85% of direct", ratio >= 0.85))
                goals.append(("added median <= 15%", added_pct <= 15))
            verdict = "; ".join(f"{text}: {'PASS' if ok else 'FAIL'}" for text, ok in goals)
            versus = f", {of_nginx:.1%} of nginx" if of_nginx is not None else ""
            print(_line(f"gateway[{name}]", g))
            print(f"    {'':<28} {ratio:>9.1%} of direct{versus}, p50 +{added:.3f} ms ({added_pct:+.0f}%)   {verdict}")
            rows.append(
                {
                    "case": case,
                    "path": path,
                    "clients": clients,
                    "via": name,
                    "direct_rps": round(d.rps),
                    "nginx_rps": round(n.rps) if n is not None else None,
                    "gateway_rps": round(g.rps),
                    "ratio": round(ratio, 3),
                    "of_nginx": round(of_nginx, 3) if of_nginx is not None else None,
                    "direct_p50_ms": round(d.p50, 3),
                    "gateway_p50_ms": round(g.p50, 3),
                    "gateway_p99_ms": round(g.percentile(0.99), 3),
                    "added_p50_ms": round(added, 3),
                    "goals_met": all(ok for _, ok in goals),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="comma-separated: " + ", ".join(TRANSPORTS))
    parser.add_argument("--server", choices=SERVERS, default="uvicorn", help="ASGI server for gateway and backend")
    parser.add_argument("--seconds", type=float, default=2.5, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each run")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "asyncio"),
        default="auto",
        help="load generator: wrk when installed (auto), else the asyncio client",
    )
    parser.add_argument("--no-nginx", action="store_true", help="skip the nginx baseline")
    args = parser.parse_args(argv)
    if args.server == "granian":
        import importlib.util

        if importlib.util.find_spec("granian") is None:
            parser.error("granian is not installed here: uv add --group dev granian")
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    for transport in transports:
        if transport not in TRANSPORTS:
            parser.error(f"unknown transport {transport!r}")

    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "asyncio"
    elif client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed here: apt-get install wrk")
    with_nginx = not args.no_nginx and (shutil.which("nginx") or Path("/usr/sbin/nginx").exists())

    started = time.monotonic()
    backend_port = free_port()
    load1 = os.getloadavg()[0]
    print(f"client={client}, nginx baseline={'yes' if with_nginx else 'no (not installed)'}")
    print(f"server={args.server}, {args.seconds}s per run after {args.warmup}s warm-up, loopback only")
    print(f"{os.cpu_count()} CPUs, load average {load1:.1f} at start (other work on the machine skews every figure)")
    with serve(args.server, "bench.gateway:create_backend", backend_port):
        direct = run_scenarios(backend_port, args.seconds, args.warmup, client)
        baseline: Results | None = None
        if with_nginx:
            nginx_port = free_port()
            with nginx(backend_port, nginx_port):
                baseline = run_scenarios(nginx_port, args.seconds, args.warmup, client)
        via: dict[str, dict[tuple[str, int], Result]] = {}
        for transport in transports:
            gateway_port = free_port()
            env = {
                "SDR_UPSTREAMS": json.dumps({"backend": f"http://127.0.0.1:{backend_port}"}),
                "SDR_ROUTES": json.dumps({"/bench": "backend"}),
                "SDR_PROXY_TRANSPORT": transport,
                "SDR_LOG_LEVEL": "WARNING",
                "SDR_ENV": "development",
            }
            with serve(args.server, "gateway.app:create_app", gateway_port, env):
                via[transport] = run_scenarios(gateway_port, args.seconds, args.warmup, client)
    rows = report(direct, via, baseline)
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
