"""Reach a running test app over httpx, as another service reaches it over the network."""

from __future__ import annotations

import anyio.to_thread
import httpx
from litestar import Litestar
from litestar.testing import TestClient


class TestClientTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends each request through a started :class:`TestClient`.

    The app keeps running on its own event loop; this only carries bytes, so a second app
    (another "service") can fetch from it exactly as it would over a socket.
    """

    __test__ = False

    def __init__(self, client: TestClient[Litestar]) -> None:
        self.client = client
        self.requests: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Forward ``request`` and return the app's answer."""
        self.requests.append(request.url.path)
        body = await request.aread()

        def send() -> httpx.Response:
            return self.client.request(
                request.method, request.url.path, content=body, headers=dict(request.headers.items())
            )

        answer = await anyio.to_thread.run_sync(send)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)
