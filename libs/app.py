"""Wiring every Litestar service shares: errors, request ids, logging, database, Redis, auth."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
import structlog
from litestar import Litestar, Request, get
from litestar.datastructures import MutableScopeHeaders, State
from litestar.di import NamedDependency, Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.session import Database
from libs.errors import EXCEPTION_HANDLERS, AppError, BadRequest, Invalid, Unauthorized, Unavailable, app_error_handler
from libs.logging import ProcessLoggingConfig, configure_logging
from libs.openapi import ServiceDocumentPlugin
from libs.queue import PendingJobs, redis_from_url, require_noeviction
from libs.security import PUBLIC, JWTAuthMiddleware, KeySource, Principal, RevocationList, TokenVerifier
from libs.settings import CommonSettings

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")
OPENAPI_PATH = "/_schema"
"""Where each service serves its own OpenAPI document; the gateway merges them."""
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
"""Health and readiness probes: polled every few seconds, so only a failing one is logged as a request."""

log = structlog.get_logger(__name__)


NUL_MESSAGE = "must not contain NUL characters"
NUL_DETAIL = "The request holds a NUL character."


def request_id_from(value: str | None) -> str:
    """Return ``value`` when it is a safe request id, else a new one."""
    return value if value and _VALID_REQUEST_ID.match(value) else uuid.uuid4().hex


def nul_parameters(scope: Scope) -> list[dict[str, str]]:
    """Field errors for every query parameter (and the path) holding a NUL character.

    No text column can store NUL (PostgreSQL refuses it), and no name, address or search term
    holds one, so such a request is refused before any handler or query runs.
    """
    errors: list[dict[str, str]] = []
    if "\x00" in scope["path"]:
        errors.append({"field": "path", "message": NUL_MESSAGE, "source": "path"})
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        seen: set[str] = set()
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="utf-8"):
            field = name.replace("\x00", "")
            if ("\x00" in name or "\x00" in value) and field not in seen:
                seen.add(field)
                errors.append({"field": field, "message": NUL_MESSAGE, "source": "query"})
    return errors


class RequestContextMiddleware:
    """Take or create ``X-Request-ID``, bind it to every log line, echo it, log the request (not a passing probe).

    It also refuses, with a 422 problem naming the parameter, a query parameter or path holding NUL.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await self.app(scope, receive, send)
            return
        raw = dict(scope["headers"]).get(b"x-request-id")
        rid = request_id_from(raw.decode("latin-1") if raw else None)
        scope.setdefault("state", {})["request_id"] = rid
        structlog.contextvars.bind_contextvars(request_id=rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            if errors := nul_parameters(scope):
                await _answer(Invalid(NUL_DETAIL, errors=errors), scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            if status >= 400 or scope["path"] not in PROBE_PATHS:
                log.info(
                    "request",
                    method=scope.get("method"),
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
            structlog.contextvars.unbind_contextvars("request_id")


async def _answer(exc: AppError, scope: Scope, receive: Receive, send: Send) -> None:
    request: Request[Any, Any, Any] = Request(scope, receive)
    await app_error_handler(request, exc).to_asgi_response(None, request)(scope, receive, send)


def _nul_field(value: Any) -> str | None:
    """The dotted path of the first string (or key) in decoded JSON that holds a NUL, if any."""
    todo: list[tuple[str, Any]] = [("", value)]
    while todo:
        path, item = todo.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return path or "body"
                todo.append((f"{path}.{key}" if path else str(key), child))
        elif isinstance(item, list):
            todo.extend((f"{path}.{i}" if path else str(i), child) for i, child in enumerate(item))
    return None


class ServiceRequest(Request[Any, Any, Any]):
    """The request class of every app: a body that cannot be decoded is the client's error (400), never a 500.

    Litestar turns a malformed JSON document into a 400, but the decoder raises other errors too:
    ``UnicodeDecodeError`` for bytes that are not UTF-8 and ``RecursionError`` for a document nested
    deeper than the interpreter's stack (``[[[[...``). A string holding NUL is refused (422, naming
    the field) here as well: no text column can store it.
    """

    async def json(self) -> Any:
        """The decoded JSON body; :class:`BadRequest` when it cannot be decoded, :class:`Invalid` for NUL."""
        try:
            value = await super().json()
        except RecursionError:
            raise BadRequest(
                "The JSON body is nested too deeply.", errors=[{"field": "body", "message": "nested too deeply"}]
            ) from None
        except ValueError:  # UnicodeDecodeError and any other decoding failure the decoder lets through
            raise BadRequest(
                "The JSON body is not valid UTF-8 JSON.", errors=[{"field": "body", "message": "not valid UTF-8 JSON"}]
            ) from None
        if (field := _nul_field(value)) is not None:
            raise Invalid(NUL_DETAIL, errors=[{"field": field, "message": NUL_MESSAGE, "source": "body"}])
        return value


def allow_every_method(message: Message, scope: Scope) -> None:
    """Hook: the automatic OPTIONS answer's ``Allow`` lists every method of its path.

    Litestar builds that answer when the first handlers of a path are registered and keeps it when
    a controller adds more (``/api/brands`` answered ``Allow: OPTIONS, POST``, without ``GET``).
    """
    handler = scope.get("route_handler")
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS" or handler is None:
        return
    if getattr(handler.fn, "__module__", None) != "litestar.routes.http":
        return  # an OPTIONS handler of our own says what it says
    for route in scope["litestar_app"].routes:
        if isinstance(route, HTTPRoute) and route.path in handler.paths:
            MutableScopeHeaders.from_message(message)["allow"] = ", ".join(sorted(route.methods))
            return


def current_principal(request: Request[Any, Any, Any]) -> Principal:
    """Return the verified principal of ``request`` or raise :class:`Unauthorized`."""
    user = request.scope.get("user")
    if not isinstance(user, Principal):
        raise Unauthorized("An access token is required.")
    return user


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """Dependency: the verified principal."""
    return current_principal(request)


async def provide_jobs() -> PendingJobs:
    """Dependency: jobs to enqueue once the request's transaction commits."""
    return PendingJobs()


async def _flush_jobs(state: State, jobs: PendingJobs) -> None:
    if jobs.jobs:
        await anyio.to_thread.run_sync(jobs.flush, state.redis)


async def provide_session(
    request: Request[Any, Any, Any], jobs: NamedDependency[PendingJobs]
) -> AsyncIterator[AsyncSession]:
    """Dependency: the request's tenant transaction; commits after the handler, then enqueues its jobs."""
    principal = current_principal(request)
    structlog.contextvars.bind_contextvars(org_id=str(principal.org_id))
    async with request.app.state.db.tenant(principal.org_id) as session:
        yield session
    await _flush_jobs(request.app.state, jobs)


async def provide_system_session(
    request: Request[Any, Any, Any], jobs: NamedDependency[PendingJobs]
) -> AsyncIterator[AsyncSession]:
    """Dependency: a system transaction for public routes (sign-up, login, inbound hooks)."""
    async with request.app.state.db.system() as session:
        yield session
    await _flush_jobs(request.app.state, jobs)


@get("/healthz", opt=PUBLIC, include_in_schema=False, sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Answer while the process is up."""
    return {"status": "ok"}


@get("/readyz", opt=PUBLIC, include_in_schema=False)
async def readyz(state: State) -> dict[str, Any]:
    """Answer 200 when PostgreSQL and Redis answer, else 503 with what is down."""
    checks: dict[str, str] = {}
    try:
        await state.db.ping()
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "down"
    try:
        await anyio.to_thread.run_sync(state.redis.ping)
        checks["redis"] = "ok"
    except Exception:
        checks["redis"] = "down"
    if any(v != "ok" for v in checks.values()):
        raise Unavailable("A dependency is down.", checks=checks)
    return {"status": "ok", "checks": checks}


def create_service_app(
    *,
    name: str,
    title: str,
    settings: CommonSettings,
    route_handlers: Sequence[Any],
    database: Database | None = None,
    redis: Redis | None = None,
    verifier: TokenVerifier | None = None,
    dependencies: dict[str, Provide] | None = None,
    on_startup: Sequence[Callable[..., Any]] = (),
    state: dict[str, Any] | None = None,
    auth_exclude: Sequence[str] = (),
) -> Litestar:
    """Build a service app; every argument after ``settings`` may be overridden by tests."""
    configure_logging(service=name, level=settings.log_level, json=settings.json_logs)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owns_db = database is None
        owns_redis = redis is None
        app.state.db = database or Database.from_url(settings.database_url, pool_size=settings.database_pool_size)
        app.state.redis = redis or redis_from_url(settings.redis_url)
        require_noeviction(app.state.redis)  # jobs enqueued after a commit must not be evicted
        app.state.revocations = RevocationList(settings.redis_url)
        app.state.verifier = verifier or TokenVerifier(
            KeySource(url=settings.jwks_url),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            revocations=app.state.revocations,
        )
        try:
            yield
        finally:
            await app.state.revocations.aclose()
            if owns_db:
                await app.state.db.dispose()
            if owns_redis:
                app.state.redis.close()

    deps: dict[str, Provide] = {
        "principal": Provide(provide_principal),
        "jobs": Provide(provide_jobs),
        "session": Provide(provide_session),
        "system_session": Provide(provide_system_session),
        **(dependencies or {}),
    }
    auth_patterns = ["^/healthz$", "^/readyz$", f"^{OPENAPI_PATH}", *auth_exclude]
    # Every method is authenticated, OPTIONS too (Litestar skips it by default, and the role guards
    # then find no user): with a token OPTIONS answers 204 and ``Allow``, without one 401.
    auth = DefineMiddleware(JWTAuthMiddleware, exclude=auth_patterns, exclude_http_methods=[])
    return Litestar(
        route_handlers=[healthz, readyz, *route_handlers],
        dependencies=deps,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[RequestContextMiddleware, auth],
        lifespan=[lifespan],
        on_startup=list(on_startup),
        state=State({"settings": settings, "service": name, **(state or {})}),
        request_max_body_size=settings.max_body_bytes,
        request_class=ServiceRequest,
        logging_config=ProcessLoggingConfig(),
        before_send=[allow_every_method],
        openapi_config=OpenAPIConfig(
            title=title,
            version="1.0.0",
            path=OPENAPI_PATH,
            render_plugins=[ServiceDocumentPlugin(auth_exclude=auth_patterns)],
        ),
        debug=False,
    )
