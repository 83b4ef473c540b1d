"""A loopback HTTP receiver for customer webhooks: records requests, answers from a script."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What a test sees of the receiver."""

    url: str
    requests: list[Received] = field(default_factory=list)
    script: deque[int] = field(default_factory=deque)
    connections: int = 0

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with ``statuses`` (then 200)."""
        self.script.extend(statuses)


@contextmanager
def receiver() -> Iterator[Receiver]:
    """Run a receiver on 127.0.0.1 for the duration of the block."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def setup(self) -> None:
            state.connections += 1
            super().setup()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            state.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status = state.script.popleft() if state.script else 200
            payload = b'{"ok": true}' if status < 300 else b"receiver error"
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/tidewater"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
