"""A raw-ASGI reverse proxy in front of the gateway's own Litestar app.

Requests whose path matches the routing table never touch Litestar's router: the proxy checks
the edge policy, rewrites headers (as bytes, from precomputed sets), streams the body upstream
and the answer back. Everything else (``/healthz``, ``/readyz``, the docs, unknown paths) goes
to the wrapped app, which also receives the ASGI lifespan.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from gateway.errors import BadGateway, UpstreamTimeout, UpstreamUnavailable
from gateway.ratelimit import RateLimiter, with_headers
from gateway.routes import RouteTable
from gateway.settings import GatewaySettings
from gateway.transport import Headers, Transport, UpstreamResponse
from libs.app import request_id_from
from libs.errors import PROBLEM_JSON, AppError, PayloadTooLarge, Unauthorized, problem_body
from libs.security import Principal, TokenVerifier, bearer_token

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]
"""Any ASGI 3 application."""

log = structlog.get_logger("gateway.proxy")

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade"})
"""RFC 9110 §7.6.1 connection-specific fields, plus every ``Proxy-*`` field (checked by prefix)."""

_REQUEST_DROP = HOP_BY_HOP | {
    b"host",
    b"content-length",  # re-added from the body the proxy actually forwards
    b"x-request-id",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"x-forwarded-prefix",
    b"forwarded",
    b"x-real-ip",
    # identity headers are only ever derived from a verified token, never taken from a client
    b"x-user-id",
    b"x-org-id",
    b"x-roles",
}
_RESPONSE_DROP = HOP_BY_HOP | {b"x-request-id", b"date", b"server"}  # the edge server sets date and server

SMALL_BODY = 64 * 1024
"""Bodies up to this size (by ``Content-Length``) are read whole: one message beats a stream."""


def filter_headers(headers: Headers, drop: frozenset[bytes]) -> Headers:
    """Return ``headers`` without the ``drop`` set, ``Proxy-*`` and the names ``Connection`` lists."""
    kept: Headers = []
    listed: set[bytes] | None = None
    for name, value in headers:
        lower = name.lower()
        if lower == b"connection":
            listed = listed or set()
            listed.update(t.strip().lower() for t in value.split(b","))
        if lower in drop or lower.startswith(b"proxy-"):
            continue
        kept.append((lower, value))
    if listed:  # rare: a second pass only when a Connection header names more fields
        kept = [(name, value) for name, value in kept if name not in listed]
    return kept


class BodyTooLarge(Exception):
    """The client sent more than the configured limit."""


class ClientDisconnected(Exception):
    """The client went away while its body was being forwarded."""


class StreamedBody:
    """A request body forwarded as it arrives, counted against the limit.

    The flags outlive the generator: a client library (or an in-process upstream) may swallow
    the generator's exception, so the proxy checks them whatever the upstream answered.
    """

    __slots__ = ("disconnected", "limit", "receive", "too_large")

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive = receive
        self.limit = limit
        self.too_large = False
        self.disconnected = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the body's chunks; raise when the client goes away or sends too much."""
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                self.too_large = True
                raise BodyTooLarge
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


@dataclass(frozen=True, slots=True)
class Upstream:
    """A named upstream: its base URL and the transport that reaches it."""

    name: str
    base_url: str
    transport: Transport


def problem_message(exc: AppError, *, path: str, request_id: str) -> tuple[int, Headers, bytes]:
    """Render ``exc`` as the status, headers and body of a problem response."""
    body = json.dumps(
        problem_body(
            status=int(exc.status),
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            instance=path,
            request_id=request_id,
            errors=exc.errors,
            **exc.extra,
        )
    ).encode()
    headers: Headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items())
    return int(exc.status), headers, body


async def send_problem(send: Send, exc: AppError, *, path: str, request_id: str) -> None:
    """Answer with ``exc`` as an ``application/problem+json`` response."""
    status, headers, body = problem_message(exc, path=path, request_id=request_id)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ApiKeyExchanger:
    """Trade ``twk_`` API keys for access tokens at the auth upstream, caching each until near expiry.

    A cached token is only as good as its verification: :meth:`verified` drops an entry whose
    token the verifier refuses (a revoked key, or its creator demoted or removed) and asks the
    auth upstream again once, so a revocation is not outlived by the cache.
    """

    def __init__(self, upstream: Callable[[], Upstream], path: str, *, max_entries: int = 10_000) -> None:
        self._upstream = upstream
        self._path = path
        self._max_entries = max_entries
        self._cache: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._inflight: dict[bytes, anyio.Event] = {}
        self.exchanges = 0
        """How many times the auth upstream was asked (for tests and metrics)."""

    @staticmethod
    def _ttl(expires_in: float) -> float:
        return max(0.0, expires_in - min(60.0, expires_in * 0.1))

    def _cached(self, digest: bytes) -> str | None:
        hit = self._cache.get(digest)
        if hit is None:
            return None
        if hit[1] <= time.monotonic():
            del self._cache[digest]
            return None
        self._cache.move_to_end(digest)
        return hit[0]

    def forget(self, api_key: str, token: str | None = None) -> None:
        """Drop the cached token of ``api_key`` (only if it is still ``token``, when given)."""
        digest = hashlib.sha256(api_key.encode()).digest()
        hit = self._cache.get(digest)
        if hit is not None and (token is None or hit[0] == token):
            del self._cache[digest]

    async def verified(self, api_key: str, verifier: TokenVerifier, *, request_id: str) -> tuple[str, Principal]:
        """Return an access token for ``api_key`` and its principal, refreshing a cached token that is refused.

        Raises:
            Unauthorized: the key is unknown, revoked or expired (or its fresh token is refused).
            Unavailable: revocations cannot be checked.
        """
        token = await self.exchange(api_key, request_id=request_id)
        try:
            return token, await verifier.verify(token)
        except Unauthorized:
            self.forget(api_key, token)
            log.info("api_key_token_refused", exchanges=self.exchanges)
        token = await self.exchange(api_key, request_id=request_id)
        return token, await verifier.verify(token)

    async def exchange(self, api_key: str, *, request_id: str) -> str:
        """Return an access token for ``api_key`` or raise :class:`Unauthorized`."""
        digest = hashlib.sha256(api_key.encode()).digest()
        token = self._cached(digest)
        if token is not None:
            return token
        while (pending := self._inflight.get(digest)) is not None:
            await pending.wait()  # one exchange per key at a time; the others reuse its answer
            token = self._cached(digest)
            if token is not None:
                return token
        done = self._inflight[digest] = anyio.Event()
        try:
            token, expires_in = await self._ask(api_key, request_id)
            self._cache[digest] = (token, time.monotonic() + self._ttl(expires_in))
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
            return token
        finally:
            del self._inflight[digest]
            done.set()

    async def _ask(self, api_key: str, request_id: str) -> tuple[str, float]:
        upstream = self._upstream()
        self.exchanges += 1
        headers: Headers = [
            (b"authorization", b"Bearer " + api_key.encode("latin-1")),
            (b"accept", b"application/json"),
            (b"content-length", b"0"),
            (b"x-request-id", request_id.encode()),
        ]
        response = await upstream.transport.request("POST", upstream.base_url + self._path, headers, b"")
        try:
            body = await response.read()
        finally:
            await response.release()
        if response.status in (400, 401, 403, 404, 422):
            raise Unauthorized("The API key is unknown, revoked or expired.")
        if response.status != 200:
            raise UpstreamUnavailable("The auth service could not exchange the API key.")
        try:
            data = json.loads(body)
            return str(data["access_token"]), float(data.get("expires_in", 60))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadGateway("The auth service sent an invalid exchange answer.") from exc


class GatewayProxy:
    """Route by prefix to upstreams, check tokens at the edge, hand everything else to ``app``."""

    def __init__(
        self,
        *,
        routes: RouteTable,
        upstreams: Mapping[str, Upstream],
        verifier: TokenVerifier,
        max_body_bytes: int,
        api_key_path: str = "/api/auth/api-keys/exchange",
        api_key_cache_size: int = 10_000,
        auth_upstream: str = "auth",
        access_log: bool = False,
        app: ASGIApp | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        missing = routes.upstreams - set(upstreams)
        if missing:
            raise ValueError(f"routes name unknown upstreams: {sorted(missing)}")
        self.app = app
        self.routes = routes
        self.upstreams = dict(upstreams)
        self.verifier = verifier
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.api_keys = ApiKeyExchanger(
            lambda: self.upstreams[auth_upstream], api_key_path, max_entries=api_key_cache_size
        )
        self._rate_limiter = rate_limiter
        self._rate_limiter_known = rate_limiter is not None

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """The edge budgets: the one given, else built once from the wrapped app's settings (None: off)."""
        if not self._rate_limiter_known:
            settings = getattr(getattr(self.app, "state", None), "settings", None)
            if isinstance(settings, GatewaySettings):
                self._rate_limiter = RateLimiter.from_settings(settings)
            self._rate_limiter_known = True
        return self._rate_limiter

    async def aclose(self) -> None:
        """Close every transport (each once) and the rate limiter's Redis connections."""
        if self._rate_limiter is not None:
            await self._rate_limiter.aclose()
        seen: set[int] = set()
        for upstream in self.upstreams.values():
            if id(upstream.transport) not in seen:
                seen.add(id(upstream.transport))
                await upstream.transport.aclose()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        route = self.routes.match(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            assert self.app is not None, "GatewayProxy.app is not set"
            await self.app(scope, receive, send)
            return
        await self.forward(scope, receive, send, self.upstreams[route.upstream], needs_token=route.needs_token)

    async def forward(
        self, scope: dict[str, Any], receive: Receive, send: Send, upstream: Upstream, *, needs_token: bool
    ) -> int:
        """Forward one request to ``upstream``, stream its answer back and return the status sent (499: none)."""
        started = time.perf_counter()
        path: str = scope["path"]
        request_id = ""
        client_headers: Headers = scope["headers"]
        host = b""
        incoming_id: bytes | None = None
        authorization: bytes | None = None
        has_length = False
        length = 0
        chunked = False
        for name, value in client_headers:
            if name == b"host":
                host = value
            elif name == b"x-request-id":
                incoming_id = value
            elif name == b"authorization":
                authorization = value
            elif name == b"content-length":
                has_length = True
                try:
                    length = int(value)
                except ValueError:
                    length = -1
            elif name == b"transfer-encoding":
                chunked = True
        request_id = request_id_from(incoming_id.decode("latin-1") if incoming_id else None)
        status = 0
        try:
            if has_length and (length < 0 or length > self.max_body_bytes):
                raise PayloadTooLarge(f"The body may be at most {self.max_body_bytes} bytes.")
            headers = filter_headers(client_headers, _REQUEST_DROP)
            principal: Principal | None = None
            if needs_token:
                headers, principal = await self._authorize(headers, authorization, request_id)
            client = scope.get("client")
            limiter = self.rate_limiter
            if limiter is not None:  # before the body is read: a refused request costs no upload
                limits = await limiter.check(scope["method"], path, principal, client[0] if client else None)
                if limits:
                    send = with_headers(send, limits)
            headers.append((b"x-forwarded-for", (client[0] if client else "").encode("latin-1")))
            headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode("latin-1")))
            if host:
                headers.append((b"x-forwarded-host", host))
            headers.append((b"x-request-id", request_id.encode()))

            body: bytes | StreamedBody | None
            if has_length and length <= SMALL_BODY:
                body = await self._read_body(receive, length) if length else b""
                headers.append((b"content-length", str(len(body)).encode()))
            elif has_length:
                body = StreamedBody(receive, self.max_body_bytes)
                headers.append((b"content-length", str(length).encode()))
            elif chunked:
                body = StreamedBody(receive, self.max_body_bytes)
            else:
                body = None

            # raw_path keeps the client's percent-encoding (signed webhooks depend on it); some
            # in-process clients put the query in it too, which the spec does not allow.
            raw_path: bytes = scope.get("raw_path") or path.encode()
            url = upstream.base_url + raw_path.partition(b"?")[0].decode("latin-1")
            if scope.get("query_string"):
                url += "?" + scope["query_string"].decode("latin-1")
            status = await self._exchange(scope, send, upstream, url, headers, body, request_id)
        except AppError as exc:
            status = int(exc.status)
            if status >= 500:
                log.warning("upstream_failed", upstream=upstream.name, path=path, status=status, request_id=request_id)
            await send_problem(send, exc, path=path, request_id=request_id)
        except ClientDisconnected:
            status = 499
        if self.access_log:
            log.info(
                "proxied",
                upstream=upstream.name,
                method=scope["method"],
                path=path,
                status=status,
                request_id=request_id,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
        return status

    async def _authorize(
        self, headers: Headers, authorization: bytes | None, request_id: str
    ) -> tuple[Headers, Principal | None]:
        token = bearer_token(authorization.decode("latin-1") if authorization else None)
        if token is None:
            raise Unauthorized("An access token is required.")
        if token.startswith("twk_"):
            # Verified here too: a cached token of a revoked key (or demoted creator) is refused and dropped.
            access, principal = await self.api_keys.verified(token, self.verifier, request_id=request_id)
            kept = [(n, v) for n, v in headers if n != b"authorization"]
            kept.append((b"authorization", b"Bearer " + access.encode("latin-1")))
            return kept, principal
        return headers, await self.verifier.verify(token)

    async def _read_body(self, receive: Receive, expected: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(f"The body may be at most {self.max_body_bytes} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _exchange(
        self,
        scope: dict[str, Any],
        send: Send,
        upstream: Upstream,
        url: str,
        headers: Headers,
        body: bytes | StreamedBody | None,
        request_id: str,
    ) -> int:
        streamed = body if isinstance(body, StreamedBody) else None
        try:
            response = await upstream.transport.request(
                scope["method"],
                url,
                headers,
                streamed.chunks() if streamed else body,  # type: ignore[arg-type]
            )
        except Exception:
            self._check_body(streamed)
            raise
        try:
            self._check_body(streamed)
            return await self._respond(send, response, request_id)
        finally:
            await response.release()

    def _check_body(self, streamed: StreamedBody | None) -> None:
        if streamed is not None and streamed.too_large:
            raise PayloadTooLarge(f"The body may be at most {self.max_body_bytes} bytes.")
        if streamed is not None and streamed.disconnected:
            raise ClientDisconnected

    async def _respond(self, send: Send, response: UpstreamResponse, request_id: str) -> int:
        headers = filter_headers(response.headers, _RESPONSE_DROP)
        headers.append((b"x-request-id", request_id.encode()))
        length = -1
        for name, value in headers:
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
                break
        if 0 <= length <= SMALL_BODY:
            body = await response.read()  # a failure here is still before the head: it becomes a problem
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return response.status
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        try:
            async for chunk in response.iter_body():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (UpstreamTimeout, UpstreamUnavailable, BadGateway) as exc:
            # The head is gone already: all that is left is to cut the connection short.
            # Returning without the final message makes the server close the connection.
            log.warning("upstream_body_failed", error=exc.code, request_id=request_id)
            return response.status
        await send({"type": "http.response.body", "body": b""})
        return response.status
