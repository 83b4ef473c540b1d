"""The gateway: the reverse proxy wrapped around a small Litestar app for its own routes."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
from litestar import Litestar, Response, get
from litestar.datastructures import State
from litestar.static_files import create_static_files_router
from litestar.types import LifeSpanReceive, LifeSpanScope, LifeSpanSend
from litestar.types import Receive as LitestarReceive
from litestar.types import Scope as LitestarScope
from litestar.types import Send as LitestarSend
from redis import Redis

from gateway.headers import with_security_headers
from gateway.openapi import gateway_document, merge_openapi
from gateway.ops import MeteredProxy, ops_lifespan, ops_route_handlers, ops_state
from gateway.proxy import ASGIApp, GatewayProxy, Receive, Send, Upstream
from gateway.routes import RouteTable
from gateway.settings import GatewaySettings
from gateway.transport import HttpxTransport, Transport, network_transport
from gateway.web import web_route_handlers
from libs.app import OPENAPI_PATH, RequestContextMiddleware, ServiceRequest
from libs.db.session import Database
from libs.errors import EXCEPTION_HANDLERS, AppError, Unavailable
from libs.logging import ProcessLoggingConfig, configure_logging
from libs.openapi import problems
from libs.queue import redis_from_url
from libs.security import PUBLIC, KeySource, RevocationList, TokenVerifier

DOCS_ASSETS = "/api/docs/assets"


# swagger-ui-dist 5 (OpenAPI 3.1) as shipped by drf-spectacular-sidecar: only its static files are
# served, found without importing the package (its __init__ imports Django, which is not installed).
def _swagger_ui_dir() -> Path:
    spec = importlib.util.find_spec("drf_spectacular_sidecar")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("drf-spectacular-sidecar (the API docs' Swagger UI) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "drf_spectacular_sidecar" / "swagger-ui-dist"


SWAGGER_UI_DIR = _swagger_ui_dir()
_DOCS_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Tidewater API</title>
<link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{DOCS_ASSETS}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>
<script src="{DOCS_ASSETS}/swagger-ui-standalone-preset.js"></script>
<script src="/api/docs/init.js"></script>
</body>
</html>
"""
_DOCS_INIT = """window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout"
});
"""
_DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@asynccontextmanager
async def asgi_lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run ``app``'s ASGI lifespan (startup on enter, shutdown on exit) inside this process."""
    to_app_send, to_app = anyio.create_memory_object_stream[dict[str, Any]](2)
    from_app_send, from_app = anyio.create_memory_object_stream[dict[str, Any]](2)

    async def run() -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        try:
            await app(scope, to_app.receive, from_app_send.send)
        except Exception as exc:
            await from_app_send.send({"type": "lifespan.startup.failed", "message": repr(exc)})

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run)
        await to_app_send.send({"type": "lifespan.startup"})
        answer = await from_app.receive()
        if answer["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"in-process upstream failed to start: {answer.get('message', '')}")
        try:
            yield
        finally:
            await to_app_send.send({"type": "lifespan.shutdown"})
            await from_app.receive()


async def fetch(upstream: Upstream, path: str, *, within: float) -> tuple[int, bytes]:
    """GET ``path`` from ``upstream`` through the proxy's transport within ``within`` seconds."""
    with anyio.fail_after(within):
        response = await upstream.transport.request(
            "GET", upstream.base_url + path, [(b"accept", b"application/json")], None
        )
        try:
            return response.status, await response.read()
        finally:
            await response.release()


@get("/healthz", opt=PUBLIC, tags=["health"], operation_id="GetHealth", sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Answer while the gateway process is up."""
    return {"status": "ok"}


async def _check_upstream(proxy: GatewayProxy, name: str, within: float) -> str:
    try:
        status, _ = await fetch(proxy.upstreams[name], "/readyz", within=within)
    except (AppError, TimeoutError):
        return "down"
    return "ok" if status == 200 else "unready"


@get(
    "/readyz",
    opt=PUBLIC,
    tags=["health"],
    operation_id="GetReadiness",
    responses=problems(503, s503="Something is not ready; `checks` names the state of each upstream and store."),
)
async def readyz(state: State) -> dict[str, Any]:
    """Answer 200 when every upstream, PostgreSQL and Redis are ready, else 503 listing each state."""
    proxy: GatewayProxy = state.proxy
    settings: GatewaySettings = state.settings
    timeout = settings.readiness_timeout
    checks: dict[str, str] = {}

    async def upstream(name: str) -> None:
        checks[name] = await _check_upstream(proxy, name, timeout)

    async def database() -> None:
        try:
            with anyio.fail_after(timeout):
                await state.db.ping()
            checks["database"] = "ok"
        except Exception:
            checks["database"] = "down"

    async def redis() -> None:
        try:
            with anyio.fail_after(timeout):
                await anyio.to_thread.run_sync(state.redis.ping, abandon_on_cancel=True)
            checks["redis"] = "ok"
        except Exception:
            checks["redis"] = "down"

    async with anyio.create_task_group() as tasks:
        for name in sorted(proxy.routes.upstreams):
            tasks.start_soon(upstream, name)
        tasks.start_soon(database)
        tasks.start_soon(redis)
    ordered = dict(sorted(checks.items()))
    if any(value != "ok" for value in ordered.values()):
        raise Unavailable("Not every dependency is ready.", checks=ordered)
    return {"status": "ok", "checks": ordered}


@get("/api/openapi.json", opt=PUBLIC, include_in_schema=False, media_type="application/json")
async def openapi_document(state: State) -> Response[bytes]:
    """Return one OpenAPI document for every service behind the gateway."""
    settings: GatewaySettings = state.settings
    cached: tuple[float, bytes] | None = state.get("openapi_cache")
    if cached is not None and cached[0] > time.monotonic():
        return Response(content=cached[1], media_type="application/json")
    proxy: GatewayProxy = state.proxy
    documents: dict[str, Mapping[str, Any] | None] = {}

    async def load(name: str) -> None:
        try:
            status, body = await fetch(
                proxy.upstreams[name], f"{OPENAPI_PATH}/openapi.json", within=settings.readiness_timeout
            )
            documents[name] = json.loads(body) if status == 200 else None
        except (AppError, TimeoutError, ValueError):
            documents[name] = None

    async with anyio.create_task_group() as tasks:
        for name in sorted(proxy.routes.upstreams):
            tasks.start_soon(load, name)
    own: dict[str, Any] | None = state.get("openapi_own")
    if own is None:
        own = state.openapi_own = gateway_document(state.own_route_handlers)
    body = json.dumps(merge_openapi(documents, own=own, routes=proxy.routes)).encode()
    complete = all(doc is not None for doc in documents.values())
    # An incomplete document is kept only a moment, so a restarted service shows up quickly.
    ttl = settings.openapi_cache_seconds if complete else min(1.0, settings.openapi_cache_seconds)
    state.openapi_cache = (time.monotonic() + ttl, body)
    return Response(content=body, media_type="application/json")


@get("/api/docs", opt=PUBLIC, include_in_schema=False, media_type="text/html", sync_to_thread=False)
def docs_page() -> Response[str]:
    """Serve the interactive API docs (Swagger UI, assets served locally)."""
    return Response(
        content=_DOCS_HTML,
        media_type="text/html",
        headers={"Content-Security-Policy": _DOCS_CSP, "X-Frame-Options": "DENY"},
    )


@get("/api/docs/init.js", opt=PUBLIC, include_in_schema=False, sync_to_thread=False)
def docs_init() -> Response[str]:
    """Start Swagger UI on the merged document (a file, so the page needs no inline script)."""
    return Response(content=_DOCS_INIT, media_type="text/javascript")


def own_route_handlers() -> list[Any]:
    """A fresh set of the gateway's own routes (the app serves one, its OpenAPI document is built from another)."""
    assets = create_static_files_router(
        path=DOCS_ASSETS, directories=[SWAGGER_UI_DIR], opt=PUBLIC, include_in_schema=False
    )
    return [healthz, readyz, openapi_document, docs_page, docs_init, assets, *ops_route_handlers()]


class GatewayApp(Litestar):
    """The gateway's own routes, logged as the client sent them.

    The request id and the request log line wrap the whole Litestar app instead of sitting in
    its middleware: a mount (``/ops/rq``, the campaign streams) cuts ``path`` down in place, and
    a refusal raised by router middleware (no operator session) is turned into its answer only
    by Litestar's outermost exception handler. Here the log line has the full path and the
    status that was sent, and every answer carries ``X-Request-ID``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._with_context = RequestContextMiddleware(self._serve)

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        # A copy for HTTP: what the router cuts from ``path`` stays out of the request log.
        inner: Any = {**scope} if scope["type"] == "http" else scope
        await super().__call__(inner, receive, send)

    async def __call__(
        self,
        scope: LitestarScope | LifeSpanScope,
        receive: LitestarReceive | LifeSpanReceive,
        send: LitestarSend | LifeSpanSend,
    ) -> None:
        """Serve one ASGI event; HTTP requests get their id and log line around the whole app."""
        await self._with_context(scope, receive, send)  # type: ignore[arg-type]  # lifespan passes through


class EdgeProxy(MeteredProxy):
    """The proxy with the gateway's security headers on every answer (:mod:`gateway.headers`)."""

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """Serve one ASGI connection, adding the security headers to the answer's head."""
        if scope["type"] == "http":
            send = with_security_headers(scope["path"], send)
        await super().__call__(scope, receive, send)


def _build_upstreams(
    settings: GatewaySettings, upstream_apps: Mapping[str, ASGIApp], transport: Transport | None
) -> dict[str, Upstream]:
    network = [name for name in settings.upstream_urls if name not in upstream_apps]
    shared = transport
    if network and shared is None:
        shared = network_transport(
            settings.proxy_transport,
            pool_size=settings.proxy_pool_size,
            connect_timeout=settings.proxy_connect_timeout,
            read_timeout=settings.proxy_read_timeout,
        )
    upstreams: dict[str, Upstream] = {}
    for name, url in settings.upstream_urls.items():
        if name not in upstream_apps:
            assert shared is not None
            upstreams[name] = Upstream(name=name, base_url=url, transport=shared)
    for name, app in upstream_apps.items():
        upstreams[name] = Upstream(
            name=name,
            base_url=f"http://{name}.internal",
            transport=HttpxTransport.asgi(app, read_timeout=settings.proxy_read_timeout),
        )
    return upstreams


def _default_verifier(settings: GatewaySettings, upstream_apps: Mapping[str, ASGIApp]) -> TokenVerifier:
    auth_app = upstream_apps.get("auth")
    if auth_app is not None:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=auth_app), timeout=settings.readiness_timeout)
        source = KeySource(url="http://auth.internal/api/auth/jwks.json", client=client)
    else:
        source = KeySource(url=settings.auth_jwks_url)
    return TokenVerifier(
        source,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        revocations=RevocationList(settings.redis_url),  # revocations take effect at the edge at once
    )


def create_app(
    settings: GatewaySettings | None = None,
    *,
    upstream_apps: Mapping[str, ASGIApp] | None = None,
    transport: Transport | None = None,
    verifier: TokenVerifier | None = None,
    database: Database | None = None,
    redis: Redis | None = None,
    **overrides: Any,
) -> GatewayProxy:
    """Build the gateway's ASGI app (serve it with ``uvicorn gateway.app:create_app --factory``).

    ``upstream_apps`` runs those upstreams in this process through ``httpx.ASGITransport`` (their
    lifespans run inside the gateway's); ``transport`` replaces the network client; the rest
    replace the verifier, database and Redis in tests. Other ``overrides`` update the settings.
    """
    settings = settings or GatewaySettings()
    if overrides:
        settings = settings.model_copy(update=overrides)
    configure_logging(service="gateway", level=settings.log_level, json=settings.json_logs)
    in_process = dict(upstream_apps or {})
    proxy = EdgeProxy(
        routes=RouteTable(settings.routes, settings.public_prefixes),
        upstreams=_build_upstreams(settings, in_process, transport),
        verifier=verifier or _default_verifier(settings, in_process),
        max_body_bytes=settings.proxy_max_body_bytes,
        api_key_path=settings.api_key_exchange_path,
        api_key_cache_size=settings.api_key_cache_size,
        access_log=settings.proxy_access_log,
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for upstream_app in in_process.values():
                await stack.enter_async_context(asgi_lifespan(upstream_app))
            app.state.db = database or Database.from_url(settings.database_url, pool_size=1)
            app.state.redis = redis or redis_from_url(settings.redis_url)
            if database is None:
                stack.push_async_callback(app.state.db.dispose)
            if redis is None:
                stack.callback(app.state.redis.close)
            stack.push_async_callback(proxy.aclose)
            if proxy.verifier.revocations is not None:
                stack.push_async_callback(proxy.verifier.revocations.aclose)
            yield

    inner = GatewayApp(
        route_handlers=[*own_route_handlers(), *web_route_handlers()],  # web/dist at /; every other route wins
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=ServiceRequest,  # undecodable bodies are 400s, NUL in a body a 422 (libs.app)
        logging_config=ProcessLoggingConfig(),  # keep configure_logging's handlers
        lifespan=[lifespan, ops_lifespan],
        state=State(
            {
                "settings": settings,
                "proxy": proxy,
                "service": "gateway",
                "own_route_handlers": own_route_handlers,
                **ops_state(settings, proxy),
            }
        ),
        openapi_config=None,
        debug=False,
    )
    proxy.app = inner
    return proxy
