"""HTTP clients the proxy forwards through: one pooled network client, or an in-process ASGI app.

The network transport is ``raw`` (:class:`gateway.http1.RawTransport`: keep-alive HTTP/1.1 on
``asyncio.Protocol`` with httptools parsing the answers) because it costs the least CPU per
request (``uv run python bench/gateway.py``, 2 shared cores, uvicorn + uvloop + httptools):
small JSON at 64 clients, direct 20,000 req/s; through the gateway on ``raw`` 12,200 req/s
(61%), on aiohttp's ``ClientSession`` 6,000 (30%: its request and response objects, header
multidicts and timers cost more than a proxy needs), on httpx over ``httpx-aiohttp`` 3,800
(19%: it pays for both clients' models), on httpx's default pool 700 (3.5%: it serialises
under concurrency, encode/httpx#3215). Added p50 at one client: +0.11, +0.24, +0.36,
+0.61 ms. At 16 clients on a 5 ms endpoint all but httpx's pool keep 95-100% of direct.
httpx stays for the in-process case: ``httpx.ASGITransport`` calls an ASGI
app directly, so tests and single-process installs run the same proxy code with no sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Protocol

import aiohttp
import httpx
from yarl import URL

from gateway.errors import BadGateway, UpstreamTimeout, UpstreamUnavailable

Headers = list[tuple[bytes, bytes]]
Body = bytes | AsyncIterable[bytes] | None


class UpstreamResponse(Protocol):
    """An upstream's answer: status and raw headers now, the body on demand."""

    status: int
    headers: Headers

    async def read(self) -> bytes:
        """Return the whole body."""
        ...

    def iter_body(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives."""
        ...

    async def release(self) -> None:
        """Give the connection back (or close it when the body was not read to the end)."""
        ...


class Transport(Protocol):
    """Send one request upstream; raise the gateway's own errors for network failures."""

    async def request(self, method: str, url: str, headers: Headers, body: Body) -> UpstreamResponse:
        """Send ``method url`` and return once the response head has arrived."""
        ...

    async def aclose(self) -> None:
        """Close every pooled connection."""
        ...


def content_length(headers: Headers) -> int | None:
    """Return the ``Content-Length`` among raw headers, if any."""
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _AiohttpResponse:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Headers = list(response.raw_headers)

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _map_aiohttp(exc) from exc

    async def iter_body(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _map_aiohttp(exc) from exc

    async def release(self) -> None:
        self._response.release()


def _map_aiohttp(exc: BaseException) -> Exception:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamUnavailable("The upstream service did not accept a connection in time.")
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout("The upstream service did not answer in time.")
    if isinstance(exc, aiohttp.ClientConnectionError):
        return UpstreamUnavailable("The upstream service is unavailable.")
    return BadGateway("The upstream service sent an invalid response.")


class AiohttpTransport:
    """Forward over one pooled ``aiohttp.ClientSession`` (created lazily inside the running loop)."""

    def __init__(self, *, pool_size: int, connect_timeout: float, read_timeout: float) -> None:
        self._pool_size = pool_size
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=0,  # per-host limits only: a hung upstream cannot take the others' connections
            limit_per_host=self._pool_size,
            keepalive_timeout=30,
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            cookie_jar=aiohttp.DummyCookieJar(),  # a proxy must never carry one client's cookies to another
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            requote_redirect_url=False,
        )
        return self._session

    async def request(self, method: str, url: str, headers: Headers, body: Body) -> UpstreamResponse:
        session = self._session or self._open()
        str_headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
        try:
            response = await session.request(
                method,
                URL(url, encoded=True),
                headers=str_headers,
                data=body,
                allow_redirects=False,
                compress=None,
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _map_aiohttp(exc) from exc
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _HttpxResponse:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers: Headers = list(response.headers.raw)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_body()])

    async def iter_body(self) -> AsyncIterator[bytes]:
        stream = self._response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        try:
            async for chunk in stream:
                yield chunk
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("The upstream service did not answer in time.") from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable("The upstream service is unavailable.") from exc

    async def release(self) -> None:
        stream = self._response.stream
        if isinstance(stream, httpx.AsyncByteStream):
            await stream.aclose()


class HttpxTransport:
    """Forward through an httpx transport: a network pool, another client's adapter, or an ASGI app.

    The transport is called directly, without ``httpx.AsyncClient``: no cookie jar (a proxy must
    not carry one client's cookies to another), no redirects, no auth flows, less work per request.
    ``deadline`` bounds the wait for the response head for transports that have no timeouts of
    their own (``httpx.ASGITransport``).
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        *,
        connect_timeout: float,
        read_timeout: float,
        deadline: float | None = None,
    ) -> None:
        self._transport = transport
        self._timeouts = {"connect": connect_timeout, "read": read_timeout, "write": read_timeout, "pool": read_timeout}
        self._deadline = deadline

    @classmethod
    def network(cls, *, pool_size: int, connect_timeout: float, read_timeout: float) -> HttpxTransport:
        """Return a transport over httpx's own connection pool."""
        limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
        return cls(
            httpx.AsyncHTTPTransport(limits=limits, trust_env=False),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

    @classmethod
    def asgi(cls, app: Any, *, read_timeout: float) -> HttpxTransport:
        """Return a transport that calls ``app`` in this process."""
        return cls(
            httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("127.0.0.1", 0)),
            connect_timeout=read_timeout,
            read_timeout=read_timeout,
            deadline=read_timeout,
        )

    async def request(self, method: str, url: str, headers: Headers, body: Body) -> UpstreamResponse:
        request = httpx.Request(
            method,
            url,
            headers=headers,
            content=body,
            extensions={"timeout": self._timeouts},
        )
        try:
            if self._deadline is None:
                response = await self._transport.handle_async_request(request)
            else:
                async with asyncio.timeout(self._deadline):
                    response = await self._transport.handle_async_request(request)
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UpstreamUnavailable("The upstream service did not accept a connection in time.") from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise UpstreamTimeout("The upstream service did not answer in time.") from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable("The upstream service is unavailable.") from exc
        return _HttpxResponse(response)

    async def aclose(self) -> None:
        await self._transport.aclose()


def aiohttp_backed_httpx(*, pool_size: int, connect_timeout: float, read_timeout: float) -> HttpxTransport:
    """Return httpx over the ``httpx-aiohttp`` transport (a candidate the benchmark measures)."""
    from httpx_aiohttp import AiohttpTransport as HttpxAiohttpTransport  # a dev-only dependency

    limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
    return HttpxTransport(
        HttpxAiohttpTransport(limits=limits, trust_env=False),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def network_transport(name: str, *, pool_size: int, connect_timeout: float, read_timeout: float) -> Transport:
    """Return the network transport called ``name`` (``raw``, ``aiohttp``, ``httpx`` or ``httpx-aiohttp``)."""
    options = {"pool_size": pool_size, "connect_timeout": connect_timeout, "read_timeout": read_timeout}
    if name == "aiohttp":
        return AiohttpTransport(**options)  # type: ignore[arg-type]
    if name == "httpx":
        return HttpxTransport.network(**options)  # type: ignore[arg-type]
    if name == "httpx-aiohttp":
        return aiohttp_backed_httpx(**options)  # type: ignore[arg-type]
    if name == "raw":
        from gateway.http1 import RawTransport

        return RawTransport(**options)  # type: ignore[arg-type]
    raise ValueError(f"unknown transport {name!r}")
