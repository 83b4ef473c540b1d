"""The operator routes (login, queues API, actions, live streams, metrics) and the customer campaign stream."""

from __future__ import annotations

import hmac
import html
import json
import re
import secrets
import uuid
from typing import Any

import anyio
import anyio.to_thread
import sqlalchemy as sa
import structlog
from litestar import Litestar, Request, Response, Router, asgi, get, post
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency, Provide
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect
from litestar.types import Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from gateway.ops import actions
from gateway.ops.broadcaster import Broadcaster, Subscriber
from gateway.ops.dashboard import PREFIX, DashboardMount
from gateway.ops.resolutions import RESOLUTION_HANDLERS
from gateway.ops.session import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    OperatorAuthMiddleware,
    OpsSession,
    SessionCodec,
    authenticate,
    end_session,
    open_session,
    operator_guard,
    safe_next,
    same_origin,
)
from gateway.proxy import GatewayProxy, send_problem
from gateway.settings import GatewaySettings
from libs import queue_stats
from libs.app import provide_principal, request_id_from
from libs.errors import AppError, BadRequest, Forbidden, Invalid, NotFound, Unauthorized
from libs.queue import ALL_QUEUES
from libs.security import PUBLIC, Principal, bearer_token

log = structlog.get_logger("gateway.ops")

LOGIN_PATH = "/ops/login"
LOGIN_COOKIE = "tw_ops_login"
_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tidewater operators</title>
<style>body{{font-family:sans-serif;max-width:22rem;margin:4rem auto}}
label,input,button{{display:block;width:100%;margin:.4rem 0}}.error{{color:#a00}}</style></head>
<body><h1>Operator sign-in</h1>{error}
<form method="post" action="/ops/login">
<input type="hidden" name="csrf" value="{csrf}">{next_field}
<label>E-mail <input type="email" name="email" autocomplete="username" required maxlength="320"></label>
<label>Password
<input type="password" name="password" autocomplete="current-password" required maxlength="1024"></label>
<button type="submit">Sign in</button>
</form></body></html>
"""


def _secure(settings: GatewaySettings, scope: Scope) -> bool:
    if settings.ops_cookie_secure is not None:
        return settings.ops_cookie_secure
    return scope.get("scheme") == "https"


def _login_page(csrf: str, error: str = "", status: int = 200, next_path: str | None = None) -> Response[str]:
    body = _LOGIN_PAGE.format(
        csrf=html.escape(csrf),
        error=f'<p class="error">{html.escape(error)}</p>' if error else "",
        next_field=f'\n<input type="hidden" name="next" value="{html.escape(next_path)}">' if next_path else "",
    )
    return Response(
        body,
        status_code=status,
        media_type="text/html",
        headers={"Content-Security-Policy": _PAGE_CSP, "Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


@get(LOGIN_PATH, opt=PUBLIC, include_in_schema=False, sync_to_thread=False)
def login_form(request: Request[Any, Any, Any], state: State) -> Response[str]:
    """Show the operator sign-in form (its CSRF token is a cookie and a hidden field; ``next`` is kept)."""
    token = secrets.token_urlsafe(24)
    response = _login_page(token, next_path=safe_next(request.query_params.get("next")))
    response.cookies.append(
        Cookie(key=LOGIN_COOKIE, value=token, path=LOGIN_PATH, httponly=True, samesite="strict",
               secure=_secure(state.settings, request.scope), max_age=900)
    )  # fmt: skip
    return response


async def _auth_login(state: State, email: str, password: str, client: str, request_id: str) -> str | None:
    proxy: GatewayProxy = state.proxy
    upstream = proxy.upstreams["auth"]
    body = json.dumps({"email": email, "password": password}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"accept", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-forwarded-for", client.encode("latin-1")),
        (b"x-request-id", request_id.encode()),
    ]
    response = await upstream.transport.request("POST", upstream.base_url + "/api/auth/login", headers, body)
    try:
        raw = await response.read()
    finally:
        await response.release()
    if response.status != 200:
        return None
    try:
        return str(json.loads(raw)["access_token"])
    except (ValueError, KeyError, TypeError):
        return None


@post(LOGIN_PATH, opt=PUBLIC, include_in_schema=False, status_code=303)
async def login(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    """Check the credentials with the auth service; only an operator gets a session."""
    if not same_origin(request.scope):
        raise Forbidden("Cross-site sign-in refused.")
    form = await request.form()
    csrf, email, password = (str(form.get(k) or "") for k in ("csrf", "email", "password"))
    next_path = safe_next(str(form.get("next") or "")) or f"{PREFIX}/"
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(csrf, expected):
        raise Forbidden("The sign-in form expired; load it again.")
    errors = [
        {"field": name, "message": "required, at most 1024 characters"}
        for name, value in (("email", email), ("password", password))
        if not value or len(value) > 1024
    ]
    if errors:
        raise Invalid(errors=errors)
    client = request.client.host if request.client else ""
    token = await _auth_login(state, email, password, client, request.scope.get("state", {}).get("request_id", ""))
    principal = await state.proxy.verifier.verify(token) if token else None
    if principal is None or not principal.operator:
        log.info("ops_login_refused", operator=principal is not None and principal.operator)
        return _login_page(expected, "Unknown e-mail or password, or not an operator.", status=401, next_path=next_path)
    codec: SessionCodec = state.ops_sessions
    value, session = codec.issue(principal)
    await open_session(state, session)
    secure = _secure(state.settings, request.scope)
    log.info("ops_login", operator_id=str(principal.user_id))
    response: Response[Any] = Redirect(next_path, status_code=303)
    response.cookies.extend(
        [
            Cookie(key=SESSION_COOKIE, value=value, path="/", httponly=True, samesite="strict", secure=secure,
                   max_age=codec.max_age),
            Cookie(key=CSRF_COOKIE, value=codec.csrf_token(session.session_id), path="/", httponly=False,
                   samesite="strict", secure=secure, max_age=codec.max_age),
            Cookie(key=LOGIN_COOKIE, value="", path=LOGIN_PATH, max_age=0),
        ]
    )  # fmt: skip
    return response


@post("/ops/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    """End the operator's browser session: forgotten server-side, so a copied cookie stops working too."""
    session = request.scope.get("auth")
    if isinstance(session, OpsSession):
        await end_session(state, session.session_id)
        log.info("ops_logout", operator_id=str(session.user_id))
    response: Response[Any] = Redirect(LOGIN_PATH, status_code=303)
    response.cookies.extend(
        [
            Cookie(key=SESSION_COOKIE, value="", path="/", max_age=0),
            Cookie(key=CSRF_COOKIE, value="", path="/", max_age=0),
        ]
    )
    return response


def _mount(state: State) -> DashboardMount:
    mount: DashboardMount | None = state.get("ops_dashboard")
    if mount is None:
        raise AppError("The dashboard is not started.")
    return mount


@asgi(PREFIX, is_mount=True, include_in_schema=False, copy_scope=False)
async def dashboard(scope: Scope, receive: Receive, send: Send) -> None:
    """rq-dashboard, behind the operator guard."""
    app = Litestar.from_scope(scope)
    await _mount(app.state)(scope, receive, send)


class RequeueRequest(BaseModel):
    """Which failed jobs to requeue: the ids given, or all of them (optionally of some queues)."""

    job_ids: list[str] | None = Field(default=None, max_length=10_000)
    queues: list[str] | None = Field(default=None, max_length=16)


async def _snapshot(state: State) -> dict[str, Any]:
    snapshot = await anyio.to_thread.run_sync(queue_stats.collect, state.redis)
    async with state.db.system() as session:
        snapshot.unknown_count, snapshot.unknown = await queue_stats.unknown_messages_async(session)
    data = snapshot.as_json()
    broadcaster: Broadcaster | None = state.get("broadcaster")
    if broadcaster is not None:
        data["stream"] = {
            "subscribers": len(broadcaster.subscribers),
            **{k: getattr(broadcaster.counters, k) for k in ("polls", "ledger_polls", "events", "dropped", "errors")},
        }
    return data


@get("/api/ops/queues", operation_id="GetOpsQueues", tags=["ops"])
async def queues_overview(state: State) -> dict[str, Any]:
    """Per queue counts, age and throughput, per worker state, and the ledger's unknown messages."""
    return await _snapshot(state)


@post("/api/ops/queues/failed/requeue", operation_id="RequeueFailedJobs", tags=["ops"], status_code=200)
async def requeue(
    state: State, data: JSONBody[RequeueRequest], principal: NamedDependency[Principal]
) -> dict[str, Any]:
    """Requeue failed jobs (all, or by id); the jobs re-check the ledger, so a sent message is never resent."""
    known = {str(q) for q in ALL_QUEUES}
    if data.queues and (unknown := [q for q in data.queues if q not in known]):
        raise Invalid(errors=[{"field": "queues", "message": f"unknown queue(s): {', '.join(unknown)}"}])
    result = await anyio.to_thread.run_sync(actions.requeue_failed, state.redis, data.job_ids, data.queues)
    log.info(
        "ops_requeue", operator_id=str(principal.user_id), requeued=len(result.requeued), missing=len(result.missing)
    )
    return {"requeued": result.requeued, "missing": result.missing}


async def _pause(state: State, campaign_id: uuid.UUID, principal: Principal, *, paused: bool) -> dict[str, Any]:
    async with state.db.system() as session:
        org_id, queued = await actions.set_paused(session, campaign_id, paused=paused)
    jobs = await anyio.to_thread.run_sync(actions.cancel_jobs, state.redis, queued) if paused else {}
    log.info("ops_campaign_" + ("paused" if paused else "resumed"), operator_id=str(principal.user_id),
             campaign_id=str(campaign_id), org_id=str(org_id), **jobs)  # fmt: skip
    return {
        "campaign_id": str(campaign_id),
        "status": "paused" if paused else "active",
        "queued_messages": len(queued),
        **jobs,
    }


@post("/api/ops/campaigns/{campaign_id:uuid}/pause", operation_id="PauseCampaignWork", tags=["ops"], status_code=200)
async def pause_campaign(
    state: State, campaign_id: FromPath[uuid.UUID], principal: NamedDependency[Principal]
) -> dict[str, Any]:
    """Pause a campaign's in-flight work: mark it paused and cancel its waiting jobs (the ledger keeps the truth)."""
    return await _pause(state, campaign_id, principal, paused=True)


@post("/api/ops/campaigns/{campaign_id:uuid}/resume", operation_id="ResumeCampaignWork", tags=["ops"], status_code=200)
async def resume_campaign(
    state: State, campaign_id: FromPath[uuid.UUID], principal: NamedDependency[Principal]
) -> dict[str, Any]:
    """Resume a paused campaign; the ticker re-enqueues its queued messages."""
    return await _pause(state, campaign_id, principal, paused=False)


async def _stream(scope: Scope, receive: Receive, send: Send, sub: Subscriber, send_timeout: float) -> None:
    """Send ``sub``'s frames as server-sent events until the client leaves or falls behind."""
    head: Any = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),
        ],
    }
    await send(head)
    await send({"type": "http.response.body", "body": b": connected\n\n", "more_body": True})
    async with anyio.create_task_group() as tasks:

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            tasks.cancel_scope.cancel()

        tasks.start_soon(watch)
        try:
            async for frame in sub.outbox:
                with anyio.fail_after(send_timeout):
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            sub.drop()  # the client stopped reading: give up on it (the server closes the connection)
        tasks.cancel_scope.cancel()


@asgi("/api/ops/queues/stream", include_in_schema=False, copy_scope=False)
async def ops_stream(scope: Scope, receive: Receive, send: Send) -> None:
    """Server-sent events: a snapshot every second and every live event (operators)."""
    state = Litestar.from_scope(scope).state
    async with state.broadcaster.subscribe() as sub:
        await _stream(scope, receive, send, sub, state.settings.ops_stream_send_timeout)


_CAMPAIGN_OF_ORG = sa.text("SELECT 1 FROM campaigns WHERE id = :id AND org_id = :org")


async def _customer(scope: Scope, state: State) -> Principal:
    authorization = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized("An access token is required.")
    proxy: GatewayProxy = state.proxy
    if token.startswith("twk_"):
        request_id = scope.get("state", {}).get("request_id", "")
        return (await proxy.api_keys.verified(token, proxy.verifier, request_id=request_id))[1]
    return await proxy.verifier.verify(token)


_CAMPAIGN_STREAM = re.compile(r"^/api/campaigns/([^/]+)/stream$")


# A mount, because Litestar routes an ASGI handler with a path parameter by method and fails;
# the proxy sends only the stream paths here (every other /api/campaigns path goes upstream).
@asgi("/api/campaigns", is_mount=True, opt=PUBLIC, include_in_schema=False, copy_scope=False)
async def campaign_stream(scope: Scope, receive: Receive, send: Send) -> None:
    """Server-sent events for one campaign of the caller's organization (snapshots from the ledger, live events)."""
    state = Litestar.from_scope(scope).state
    raw = scope.get("raw_path") or scope["path"].encode()
    path = raw.split(b"?", 1)[0].decode("latin-1")
    request_id = scope.get("state", {}).get("request_id") or request_id_from(None)
    try:
        match = _CAMPAIGN_STREAM.match(path)
        if match is None:
            raise NotFound("Not found.")
        try:
            campaign_id = uuid.UUID(match.group(1))
        except ValueError as exc:
            raise BadRequest("The campaign id is not a UUID.") from exc
        principal = await _customer(scope, state)
        async with state.db.tenant(principal.org_id) as session:  # RLS, and the org filter too
            owned = (
                await (await session.connection()).execute(
                    _CAMPAIGN_OF_ORG, {"id": campaign_id, "org": principal.org_id}
                )
            ).first()
        if owned is None:
            raise NotFound("No such campaign.")
    except AppError as exc:
        await send_problem(send, exc, path=path, request_id=request_id)  # type: ignore[arg-type]
        return
    async with state.broadcaster.subscribe(org_id=principal.org_id, campaign_id=campaign_id) as sub:
        await _stream(scope, receive, send, sub, state.settings.ops_stream_send_timeout)


@get("/metrics", opt=PUBLIC, include_in_schema=False)
async def metrics(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    """Prometheus metrics (operators, or the bearer token in ``SDR_METRICS_TOKEN``)."""
    settings: GatewaySettings = state.settings
    token = bearer_token(request.headers.get("authorization"))
    expected = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if not (expected and token and hmac.compare_digest(token, expected)):
        result = await authenticate(request)
        if not isinstance(result.user, Principal) or not result.user.operator:
            raise Forbidden("Only operators may read the metrics.")
    await state.ops_collector.refresh(state)
    return Response(generate_latest(state.ops_registry), media_type=CONTENT_TYPE_LATEST)


def ops_router() -> Router:
    """Every operator route, behind the operator authentication and guard."""
    return Router(
        path="/",
        route_handlers=[
            dashboard,
            queues_overview,
            requeue,
            pause_campaign,
            resume_campaign,
            *RESOLUTION_HANDLERS,
            ops_stream,
            logout,
        ],
        guards=[operator_guard],
        # OPTIONS is authenticated too: the guard needs a user on every method it sees.
        middleware=[DefineMiddleware(OperatorAuthMiddleware, exclude_http_methods=[])],
        dependencies={"principal": Provide(provide_principal)},
    )


PUBLIC_HANDLERS = [login_form, login, campaign_stream, metrics]
"""Routes that authenticate on their own (the sign-in form, the customer stream, /metrics)."""
