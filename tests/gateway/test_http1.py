"""The raw HTTP/1.1 transport against scripted HTTP servers on loopback, and the gateway over it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from gateway.app import create_app
from gateway.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.http1 import RawTransport
from gateway.settings import GatewaySettings
from libs.settings import Environment
from tests.support.servers import free_port


@dataclass
class Request:
    """One request as the scripted server read it off the wire."""

    head: bytes
    body: bytes
    connection: int

    @property
    def method(self) -> str:
        return self.head.split(b" ", 1)[0].decode()

    def header(self, name: bytes) -> bytes | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name:
                return value.strip()
        return None


Reply = Callable[[Request, asyncio.StreamWriter, int], Awaitable[bool]]
"""Answer a request (given its index on its connection); return False to close the connection."""


@dataclass
class Scripted:
    """A loopback HTTP/1.1 server whose answers a test scripts."""

    reply: Reply
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _read(self, reader: asyncio.StreamReader, connection: int) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        request = Request(head=head, body=b"", connection=connection)
        length = request.header(b"content-length")
        if length is not None:
            request.body = await reader.readexactly(int(length))
        elif request.header(b"transfer-encoding") == b"chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            request.body = b"".join(parts)
        return request

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        connection = self.connections
        index = 0
        try:
            while (request := await self._read(reader, connection)) is not None:
                self.requests.append(request)
                if not await self.reply(request, writer, index):
                    break
                await writer.drain()
                index += 1
        except asyncio.CancelledError:
            pass  # the fixture stops a handler still hanging: end quietly
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Reply], Awaitable[Scripted]]]:
    servers: list[tuple[asyncio.Server, Scripted]] = []

    async def start(reply: Reply) -> Scripted:
        scripted = Scripted(reply)
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        scripted.port = server.sockets[0].getsockname()[1]
        servers.append((server, scripted))
        return scripted

    yield start
    for server, scripted in servers:
        server.close()
        for task in scripted.tasks:
            task.cancel()
        await asyncio.gather(*scripted.tasks, return_exceptions=True)
        await server.wait_closed()


def ok(body: bytes = b"ok") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)


async def answer_ok(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
    writer.write(ok(request.body or b"ok"))
    return True


@pytest.fixture
async def transport() -> AsyncIterator[RawTransport]:
    raw = RawTransport(pool_size=4, connect_timeout=1.0, read_timeout=0.3)
    yield raw
    await raw.aclose()


async def call(transport: RawTransport, method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    response = await transport.request(method, url, [(b"x-test", b"1")], body)
    try:
        return response.status, await response.read()
    finally:
        await response.release()


async def test_keep_alive_connections_are_reused(
    serve: Callable[[Reply], Awaitable[Scripted]], transport: RawTransport
) -> None:
    server = await serve(answer_ok)
    for _ in range(3):
        assert await call(transport, "GET", server.url + "/a?b=1") == (200, b"ok")
    assert await call(transport, "POST", server.url + "/p", b"payload") == (200, b"payload")
    assert server.connections == 1
    first = server.requests[0]
    assert first.head.startswith(b"GET /a?b=1 HTTP/1.1\r\n")
    assert first.header(b"host") == f"127.0.0.1:{server.port}".encode()
    assert first.header(b"x-test") == b"1"
    assert server.requests[-1].header(b"content-length") == b"7"

    results = await asyncio.gather(*(call(transport, "GET", server.url + "/c") for _ in range(10)))
    assert results == [(200, b"ok")] * 10
    assert server.connections <= 4  # the pool is bounded


async def test_chunked_and_close_delimited_answers_arrive_whole(
    serve: Callable[[Reply], Awaitable[Scripted]], transport: RawTransport
) -> None:
    async def reply(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if request.head.startswith(b"GET /until-close"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nfirst ")
            await writer.drain()
            writer.write(b"and last")
            return False
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"alpha ", b"beta ", b"gamma"):
            await writer.drain()
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
        writer.write(b"0\r\n\r\n")
        return True

    server = await serve(reply)
    response = await transport.request("GET", server.url + "/chunks", [], None)
    pieces = [chunk async for chunk in response.iter_body()]
    await response.release()
    assert b"".join(pieces) == b"alpha beta gamma"
    assert await call(transport, "GET", server.url + "/chunks") == (200, b"alpha beta gamma")
    assert server.connections == 1  # a chunked answer read to its end keeps the connection

    assert await call(transport, "GET", server.url + "/until-close") == (200, b"first and last")
    assert await call(transport, "GET", server.url + "/chunks") == (200, b"alpha beta gamma")
    assert server.connections == 2  # the close-delimited answer's connection was not reused


async def test_a_streamed_body_without_length_goes_chunked(
    serve: Callable[[Reply], Awaitable[Scripted]], transport: RawTransport
) -> None:
    server = await serve(answer_ok)

    async def body() -> AsyncIterator[bytes]:
        for piece in (b"one,", b"", b"two,", b"three"):
            yield piece

    response = await transport.request("POST", server.url + "/in", [], body())
    assert await response.read() == b"one,two,three"
    await response.release()
    assert server.requests[0].header(b"transfer-encoding") == b"chunked"
    assert server.requests[0].body == b"one,two,three"


async def test_a_half_read_answer_never_goes_back_to_the_pool(
    serve: Callable[[Reply], Awaitable[Scripted]], transport: RawTransport
) -> None:
    async def reply(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if request.head.startswith(b"GET /big"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 1000)
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"x" * 99000)
            return True
        writer.write(ok())
        return True

    server = await serve(reply)
    response = await transport.request("GET", server.url + "/big", [], None)
    async for _ in response.iter_body():
        break
    await response.release()
    assert await call(transport, "GET", server.url + "/small") == (200, b"ok")
    assert server.connections == 2


async def test_a_kept_connection_the_server_closed_is_retried_once_for_get(
    serve: Callable[[Reply], Awaitable[Scripted]], transport: RawTransport
) -> None:
    async def reply(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index == 1:
            return False  # the second request on a kept connection: close without a byte
        writer.write(ok())
        return True

    server = await serve(reply)
    assert await call(transport, "GET", server.url + "/one") == (200, b"ok")
    assert await call(transport, "GET", server.url + "/two") == (200, b"ok")
    assert server.connections == 2
    assert [r.connection for r in server.requests] == [1, 1, 2]  # sent again, on a new connection


async def test_a_post_is_never_sent_twice(
    serve: Callable[[Reply], Awaitable[Scripted]], transport: RawTransport
) -> None:
    async def reply(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index == 1:
            return False
        writer.write(ok())
        return True

    server = await serve(reply)
    assert await call(transport, "GET", server.url + "/one") == (200, b"ok")
    with pytest.raises(UpstreamUnavailable):
        await call(transport, "POST", server.url + "/charge", b"once")
    posts = [r for r in server.requests if r.method == "POST"]
    assert len(posts) == 1
    assert posts[0].body == b"once"


async def test_refused_and_hung_upstreams_raise_the_proxy_errors(
    serve: Callable[[Reply], Awaitable[Scripted]], transport: RawTransport
) -> None:
    with pytest.raises(UpstreamUnavailable):
        await call(transport, "GET", f"http://127.0.0.1:{free_port()}/x")

    async def hang(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        await asyncio.sleep(3600)
        return False

    server = await serve(hang)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await call(transport, "GET", server.url + "/hang")
    assert 0.25 < time.monotonic() - started < 1.5


async def test_the_gateway_over_the_raw_transport_maps_refused_to_503_and_hang_to_504(
    serve: Callable[[Reply], Awaitable[Scripted]],
) -> None:
    async def reply(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if b"/hooks/hang" in request.head:
            await asyncio.sleep(3600)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
        return True

    server = await serve(reply)
    settings = GatewaySettings(
        env=Environment.TEST,
        proxy_transport="raw",
        proxy_read_timeout=0.3,
        upstreams={"hooks": server.url, "dead": f"http://127.0.0.1:{free_port()}"},
        routes={"/hooks": "hooks", "/dead": "dead"},
    )
    gateway = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://edge") as client:
            assert (await client.get("/hooks/ok")).json() == {}
            r = await client.get("/dead/x")
            assert r.status_code == 503
            assert json.loads(r.content)["code"] == "UpstreamUnavailable"
            r = await client.get("/hooks/hang")
            assert r.status_code == 504
            assert r.json()["code"] == "UpstreamTimeout"
            assert (await client.get("/hooks/ok")).status_code == 200
    finally:
        await gateway.aclose()
