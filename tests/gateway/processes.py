"""Start ASGI apps as real uvicorn processes on loopback ports, and always stop them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import ROOT
from tests.support.servers import free_port


@dataclass
class App:
    """An ASGI factory to serve, and where."""

    target: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Server:
    """A running uvicorn process."""

    app: App
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """Its base URL."""
        return self.app.url

    @property
    def port(self) -> int:
        """Its port."""
        return self.app.port

    def kill(self) -> None:
        """Kill it at once (SIGKILL), as a crash would."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL if it lingers)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start(app: App) -> Server:
    command = [
        sys.executable, "-m", "uvicorn", app.target, "--factory", "--host", "127.0.0.1", "--port", str(app.port),
        "--no-access-log", "--log-level", "warning", "--lifespan", "on", "--timeout-graceful-shutdown", "1",
    ]  # fmt: skip
    with app.log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **app.env}, stdout=out, stderr=subprocess.STDOUT
        )
    return Server(app=app, process=process)


def _wait_healthy(server: Server, deadline: float) -> None:
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.app.target} exited early:\n{server.app.log.read_text()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.app.target} did not start:\n{server.app.log.read_text()}")
        time.sleep(0.05)


@contextmanager
def running(*apps: App) -> Iterator[list[Server]]:
    """Serve every app at once (they start in parallel) until the block ends, then stop them all."""
    servers: list[Server] = []
    try:
        servers.extend(_start(app) for app in apps)
        deadline = time.monotonic() + 30
        for server in servers:
            _wait_healthy(server, deadline)
        yield servers
    finally:
        for server in servers:
            server.stop()
