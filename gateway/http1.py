"""A small pooled HTTP/1.1 client on ``asyncio.Protocol``, parsing answers with httptools.

It does only what the proxy needs: keep-alive connections per upstream in a bounded LIFO pool,
the request head in one write (with the body when it is bytes, else streamed, chunked when it
has no length), the answer's head parsed by httptools and its body handed over as it arrives
(by length, chunked or until the upstream closes). A connection goes back to the pool only
after a complete answer that allows keep-alive; anything else closes it.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from urllib.parse import urlsplit

import httptools

from gateway.errors import BadGateway, UpstreamTimeout, UpstreamUnavailable

Headers = list[tuple[bytes, bytes]]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""Methods that may be sent again when a kept connection turns out to be closed (only without a body)."""

HIGH_WATER = 256 * 1024
"""Body bytes buffered from an upstream before the connection stops reading."""


class _ClosedEarly(Exception):
    """The upstream closed the connection before sending any byte of its answer."""


def _unavailable(reason: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"The upstream service is unavailable ({reason}).")


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(UpstreamTimeout("The upstream service did not answer in time."))


class _Connection(asyncio.Protocol):
    """One upstream connection and the answer in flight on it."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False
        self.busy = False
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: Headers = []
        self.head: asyncio.Future[None] | None = None
        self.got_bytes = False
        self.head_done = False
        self.interim = False
        self.complete = False
        self.keep = False
        self.no_body = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.waiter: asyncio.Future[None] | None = None
        self.error: Exception | None = None
        self.read_paused = False

    def begin(self, *, no_body: bool) -> None:
        """Prepare for one request/answer exchange."""
        self._reset()
        self.busy = True
        self.no_body = no_body
        self.head = self.loop.create_future()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # nothing was asked: an idle connection has no business talking
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except Exception:
            self._fail(BadGateway("The upstream service sent an invalid response."))
            self.close()

    def eof_received(self) -> bool | None:
        return False  # close the transport; connection_lost settles the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        if self.head is not None and not self.head.done():
            if self.got_bytes:
                self.head.set_exception(_unavailable("closed in the middle of the answer's head"))
            else:
                self.head.set_exception(_ClosedEarly())
        elif self.head_done and not self.complete and self.error is None:
            if self._framed():
                self.error = _unavailable("closed before the end of the answer")
            else:
                self.complete = True  # an answer without length or chunks ends when the connection does
                self.keep = False
        self._wake()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:  # bytes after a complete answer: never reuse this connection
            self.keep = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.headers = []  # an interim answer: wait for the final one
            self.interim = True
            return
        self.status = status
        self.head_done = True
        if self.no_body:  # the answer to HEAD: a length but no body; do not parse what follows
            self.complete = True
            self.keep = False
        assert self.head is not None
        if not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.no_body:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if not self.complete:
            self.complete = True
            self.keep = self.parser.should_keep_alive()
        self._wake()

    # helpers

    def _framed(self) -> bool:
        for name, value in self.headers:
            lower = name.lower()
            if lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value.lower()):
                return True
        return False

    def _fail(self, error: Exception) -> None:
        if self.head is not None and not self.head.done():
            self.head.set_exception(error)
        elif self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, future: asyncio.Future[None], within: float) -> None:
        # one timer handle per wait: cheaper than an asyncio.timeout() scope on the hot path
        handle = self.loop.call_later(within, _expire, future)
        try:
            await future
        finally:
            handle.cancel()

    async def wait_head(self, within: float) -> None:
        """Return once the answer's head has arrived (raise on close, timeout or garbage)."""
        assert self.head is not None
        if not self.head.done():
            await self._wait(self.head, within)
        self.head.result()

    async def wait_body(self, within: float) -> None:
        """Return once more body arrives, the answer ends or fails."""
        if self.complete or self.error is not None:
            return
        if self.closed:
            raise _unavailable("closed before the end of the answer")
        self.waiter = self.loop.create_future()
        await self._wait(self.waiter, within)

    def take(self) -> bytes:
        """Return one buffered chunk, resuming reads when the buffer has room again."""
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.read_paused and self.buffered <= HIGH_WATER // 2 and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()
        return chunk

    async def send_stream(self, head: bytes, body: AsyncIterable[bytes], *, chunked: bool, within: float) -> None:
        """Write the head, then the body as it comes (framed in chunks when ``chunked``)."""
        transport = self.transport
        assert transport is not None
        transport.write(head)
        async for chunk in body:
            if self.closed:
                return  # the upstream is gone (maybe after answering early): wait_head will tell
            if chunk:
                if chunked:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                else:
                    transport.write(chunk)
            if self.write_paused:
                self.drained = self.loop.create_future()
                await self._wait(self.drained, within)
        if chunked and not self.closed:
            transport.write(b"0\r\n\r\n")

    def close(self) -> None:
        """Close the connection (it never goes back to the pool)."""
        self.keep = False
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (a broken or half-read exchange)."""
        self.keep = False
        if self.transport is not None and not self.closed:
            self.transport.abort()


class _Pool:
    """Keep-alive connections to one ``host:port``, at most ``size`` open, the last returned reused first."""

    def __init__(self, host: str, port: int, ssl: ssl_module.SSLContext | None, *, size: int, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.host = host
        self.port = port
        self.ssl = ssl
        self.size = size
        self.timeout = timeout
        self.idle: list[_Connection] = []
        self.open = 0
        self.closed = False
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, *, fresh: bool) -> _Connection:
        """Return an idle connection (unless ``fresh``) or a new one, waiting for room up to the timeout."""
        deadline = None
        while True:
            if not fresh:
                idle = self.idle
                while idle:
                    conn = idle.pop()
                    if not conn.closed:
                        conn.reused = True
                        return conn
            if self.open < self.size:
                return await self._connect()
            if deadline is None:
                deadline = self.loop.time() + self.timeout
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise UpstreamUnavailable("The upstream service did not accept a connection in time.")
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            woken = False
            try:
                async with asyncio.timeout(remaining):
                    await waiter
                woken = True
            except TimeoutError:
                raise UpstreamUnavailable("The upstream service did not accept a connection in time.") from None
            finally:
                if not woken:
                    if waiter in self.waiters:
                        self.waiters.remove(waiter)
                    elif waiter.done() and not waiter.cancelled():
                        self._wake_one()  # woken but leaving (timeout, cancel): pass the turn on

    async def _connect(self) -> _Connection:
        self.open += 1
        try:
            async with asyncio.timeout(self.timeout):
                _, conn = await self.loop.create_connection(
                    lambda: _Connection(self), self.host, self.port, ssl=self.ssl
                )
        except TimeoutError:
            self._freed()
            raise UpstreamUnavailable("The upstream service did not accept a connection in time.") from None
        except OSError as exc:
            self._freed()
            raise _unavailable("connection refused or unreachable") from exc
        except BaseException:
            self._freed()
            raise
        return conn

    def _freed(self) -> None:
        self.open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def release(self, conn: _Connection) -> None:
        """Keep ``conn`` for the next request if its answer ended cleanly, else close it."""
        if not conn.busy:
            return
        conn.busy = False
        if (
            conn.complete
            and conn.keep
            and not conn.closed
            and conn.error is None
            and not conn.read_paused
            and not self.closed
        ):
            conn._reset()
            self.idle.append(conn)
            self._wake_one()
        else:
            conn.abort()

    def discard(self, conn: _Connection) -> None:
        """Forget a closed connection."""
        if conn in self.idle:
            self.idle.remove(conn)
        self._freed()

    def close(self) -> None:
        """Close every idle connection; busy ones close when released."""
        self.closed = True
        for conn in list(self.idle):
            conn.close()
        self.idle.clear()


class RawResponse:
    """The answer on one connection: status and raw headers, the body as it arrives."""

    __slots__ = ("_conn", "_timeout", "headers", "status")

    def __init__(self, conn: _Connection, timeout: float) -> None:
        self._conn = conn
        self._timeout = timeout
        self.status = conn.status
        self.headers = conn.headers

    async def read(self) -> bytes:
        """Return the whole body."""
        conn = self._conn
        while not conn.complete:
            if conn.error is not None:
                raise conn.error
            await conn.wait_body(self._timeout)
            if conn.chunks and conn.read_paused:
                break  # a big body: collect it through the stream below
        if conn.complete and conn.error is None:
            chunks = conn.chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            conn.buffered = 0
            return body
        return b"".join([chunk async for chunk in self.iter_body()])

    async def iter_body(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives."""
        conn = self._conn
        while True:
            while conn.chunks:
                yield conn.take()
            if conn.complete:
                return
            if conn.error is not None:
                raise conn.error
            await conn.wait_body(self._timeout)

    async def release(self) -> None:
        """Give the connection back, or close it when the answer did not end cleanly."""
        self._conn.pool.release(self._conn)


class RawTransport:
    """Forward over pooled keep-alive HTTP/1.1 connections, one bounded pool per upstream."""

    def __init__(self, *, pool_size: int, connect_timeout: float, read_timeout: float) -> None:
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pools: dict[str, tuple[_Pool, bytes]] = {}
        self._ssl: ssl_module.SSLContext | None = None

    def _pool(self, origin: str) -> tuple[_Pool, bytes]:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported upstream URL {origin!r}")
        ssl = None
        if parts.scheme == "https":
            ssl = self._ssl = self._ssl or ssl_module.create_default_context()
        port = parts.port or (443 if ssl else 80)
        pool = _Pool(parts.hostname, port, ssl, size=self._pool_size, timeout=self._connect_timeout)
        entry = self._pools[origin] = (pool, parts.netloc.encode("idna"))
        return entry

    async def request(
        self, method: str, url: str, headers: Headers, body: bytes | AsyncIterable[bytes] | None
    ) -> RawResponse:
        """Send ``method url`` and return once the answer's head has arrived."""
        scheme_end = url.find("://") + 3
        slash = url.find("/", scheme_end)
        if slash < 0:
            origin, target = url, "/"
        else:
            origin, target = url[:slash], url[slash:]
        entry = self._pools.get(origin) or self._pool(origin)
        pool, authority = entry

        parts = [method.encode("ascii"), b" ", target.encode("latin-1"), b" HTTP/1.1\r\nhost: ", authority, b"\r\n"]
        has_length = False
        for name, value in headers:
            if not has_length and name.lower() == b"content-length":
                has_length = True
            parts += (name, b": ", value, b"\r\n")
        streamed = body is not None and not isinstance(body, bytes | bytearray | memoryview)
        chunked = streamed and not has_length
        if chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
        elif not has_length and body:
            parts += (b"content-length: ", str(len(body)).encode(), b"\r\n")  # type: ignore[arg-type]
        parts.append(b"\r\n")
        if body and not streamed:
            parts.append(body)  # type: ignore[arg-type]
        message = b"".join(parts)

        retry = not body and not streamed and method in IDEMPOTENT
        no_body = method == "HEAD"
        fresh = False
        while True:
            conn = await pool.acquire(fresh=fresh)
            conn.begin(no_body=no_body)
            try:
                if streamed:
                    await conn.send_stream(message, body, chunked=chunked, within=self._read_timeout)  # type: ignore[arg-type]
                else:
                    assert conn.transport is not None
                    conn.transport.write(message)
                await conn.wait_head(self._read_timeout)
            except _ClosedEarly:
                conn.busy = False
                if conn.reused and retry and not fresh:
                    fresh = True  # a kept connection the upstream had closed: once more on a new one
                    continue
                raise _unavailable("closed the connection without answering") from None
            except BaseException:
                conn.busy = False
                conn.abort()
                raise
            return RawResponse(conn, self._read_timeout)

    async def aclose(self) -> None:
        """Close every idle connection; busy ones close when released."""
        pools, self._pools = self._pools, {}
        for pool, _ in pools.values():
            pool.close()
        await asyncio.sleep(0)  # let the transports run their close callbacks
