"""rq-dashboard, hardened and mounted at ``/ops/rq`` for operators only.

rq-dashboard is a Flask blueprint with no authentication, no CSRF protection, a "requeue all"
that runs on a plain GET, and a job page that renders job data unescaped (its issue #526).
The mount adds what it lacks:

- only operators reach any page, asset or action (the router's auth middleware and guard);
- actions refuse GET, and with the session cookie need a same-origin ``Origin``/``Referer``
  and the CSRF token (see :mod:`gateway.ops.session`); every action is audit-logged;
- the templates are loaded through a loader that escapes every Underscore interpolation
  (``<%=`` becomes ``<%-``), puts a per-response nonce on the one inline script and points
  the favicon at the blueprint's static folder; the CSP then allows scripts from the gateway
  and that nonce only (``'unsafe-eval'`` stays: Underscore compiles its templates with
  ``new Function``, which inline handlers and injected ``<script>`` tags cannot use);
- job data from ``/data/`` is scrubbed of e-mail addresses and phone numbers (jobs carry ids,
  this catches an exception message that quotes a lead);
- the WSGI app runs under ``SCRIPT_NAME=/ops/rq``, so ``url_for`` and the pages' script
  variables build every link, asset and JSON URL under the prefix;
- rq-dashboard calls ``Worker.all`` without a serializer, so a busy worker running a JSON job
  makes its workers view fail to unpickle; that one view is replaced by one that passes the
  JSON serializer;
- a job that does not exist (a stale page, a typed URL) is a 404 problem and an action the job's
  state does not allow (requeueing a job that has not failed) a 409 problem, where rq-dashboard
  would answer Flask's HTML 500.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import structlog
from a2wsgi import WSGIMiddleware
from flask import Flask, g, request
from flask.templating import DispatchingJinjaLoader
from jinja2 import BaseLoader, Environment
from litestar.types import Receive, Scope, Send
from rq import Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.serializers import JSONSerializer

from libs.errors import PROBLEM_JSON, Forbidden, Unauthorized, problem_body
from libs.security import Principal

log = structlog.get_logger("gateway.ops")

PREFIX = "/ops/rq"
ACTION_PATTERNS = (
    re.compile(r"^/job/[^/]+/(delete|requeue)$"),
    re.compile(r"^/requeue/[^/]+$"),
    re.compile(r"^/queue/[^/]+/[^/]+/empty$"),
    re.compile(r"^/queue/[^/]+/compact$"),
)
"""rq-dashboard's state-changing URLs (relative to the mount)."""
DELETE_PATTERNS = (re.compile(r"^/job/[^/]+/delete$"), re.compile(r"^/queue/[^/]+/[^/]+/empty$"))

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?\d[\d ().\-]{7,}\d")
_ESCAPED_JQUERY = re.compile(r"<%=\s*\$\('<div/>'\)\.text\((.+?)\)\.html\(\)\s*%>")


def csp(nonce: str) -> str:
    """The dashboard's Content-Security-Policy for one response."""
    return (
        "default-src 'none'; "
        f"script-src 'self' 'nonce-{nonce}' 'unsafe-eval'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


def harden_template(source: str) -> str:
    """Rewrite an rq-dashboard template: escape every interpolation, add the nonce, fix the favicon."""
    source = _ESCAPED_JQUERY.sub(r"<%- \1 %>", source)
    source = source.replace("<%=", "<%-")
    source = source.replace('<script type="text/javascript">', '<script nonce="{{ csp_nonce }}">')
    source = source.replace(
        "url_for('static', filename='favicon.ico')", "url_for('rq_dashboard.static', filename='favicon.ico')"
    )
    # Switching instances rebuilt the path from the first segment, which is the mount prefix here.
    return source.replace(
        "var url = window.location.pathname.slice(1);\n    url = url.slice(url.indexOf('/'));\n"
        "    url = new_instance_number + url;",
        "var url = {{ rq_url_prefix|tojson|safe }} + new_instance_number + '/view/queues';",
    )


class HardenedLoader(BaseLoader):
    """Load rq-dashboard's templates through :func:`harden_template`."""

    def __init__(self, inner: BaseLoader) -> None:
        self.inner = inner

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        """Return the hardened source of ``template``."""
        source, filename, uptodate = self.inner.get_source(environment, template)
        return harden_template(source), filename, uptodate

    def list_templates(self) -> list[str]:
        """List the inner loader's templates."""
        return self.inner.list_templates()


class DashboardFlask(Flask):
    """The Flask app that hosts the blueprint, with the hardened template loader."""

    def create_global_jinja_loader(self) -> DispatchingJinjaLoader:
        """Wrap Flask's loader so every template is hardened."""
        return HardenedLoader(super().create_global_jinja_loader())  # type: ignore[return-value]


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _PHONE.sub("[phone]", _EMAIL.sub("[email]", value))
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {
            k: v if k in ("id", "created_at", "enqueued_at", "started_at", "ended_at", "url") else _scrub(v)
            for k, v in value.items()
        }
    return value


def create_dashboard(redis_url: str, *, disable_delete: bool, poll_interval_ms: int = 2500) -> Flask:
    """Build the Flask app serving rq-dashboard for the queues at ``redis_url``."""
    from rq_dashboard import web

    web.config.serializer = JSONSerializer  # our jobs are JSON (libs.queue)
    app = DashboardFlask("tidewater_rq_dashboard", static_folder=None)
    app.config.update(
        RQ_DASHBOARD_REDIS_URL=redis_url,
        RQ_DASHBOARD_DISABLE_DELETE=disable_delete,
        RQ_DASHBOARD_POLL_INTERVAL=poll_interval_ms,
        APPLICATION_ROOT=PREFIX,
        SESSION_COOKIE_NAME="tw_ops_flask_unused",
    )
    app.register_blueprint(web.blueprint)
    with app.app_context():
        web.setup_rq_connection(app)

    def list_workers(instance_number: int) -> Any:
        from flask import current_app, jsonify

        workers = []
        for worker in Worker.all(connection=current_app.redis_conn, serializer=JSONSerializer):  # type: ignore[attr-defined]
            job = worker.get_current_job()
            workers.append(
                {
                    "name": worker.name,
                    "pid": worker.pid,
                    "queues": worker.queue_names(),
                    "state": str(worker.get_state()),
                    "current_job": "idle"
                    if job is None
                    else {
                        "job_id": job.id,
                        "description": job.description,
                        "created_at": job.created_at.isoformat() if job.created_at else None,
                        "call_string": job.get_call_string(),
                    },
                    "last_heartbeat": worker.last_heartbeat.isoformat() if worker.last_heartbeat else None,
                    "birth_date": worker.birth_date.isoformat() if worker.birth_date else None,
                    "successful_job_count": worker.successful_job_count,
                    "failed_job_count": worker.failed_job_count,
                    "total_working_time": worker.total_working_time,
                    "version": getattr(worker, "version", ""),
                    "python_version": getattr(worker, "python_version", ""),
                }
            )
        workers.sort(key=lambda w: (w["state"], w["queues"], w["name"]))
        return jsonify(workers=workers), {"Cache-Control": "no-store"}

    app.view_functions["rq_dashboard.list_workers"] = list_workers

    def problem(status: int, code: str, title: str, detail: str) -> Any:
        body = problem_body(
            status=status,
            code=code,
            title=title,
            detail=detail,
            instance=request.script_root + request.path,
            request_id=request.headers.get("x-request-id"),
        )
        return app.response_class(json.dumps(body), status=status, mimetype=PROBLEM_JSON)

    @app.errorhandler(NoSuchJobError)
    def no_such_job(_: NoSuchJobError) -> Any:
        return problem(404, "NotFound", "Not found", "No such job.")

    @app.errorhandler(InvalidJobOperation)
    def invalid_job_operation(_: InvalidJobOperation) -> Any:
        return problem(409, "Conflict", "Conflict", "Only a failed job can be requeued.")

    @app.context_processor
    def nonce() -> dict[str, str]:
        if "csp_nonce" not in g:
            g.csp_nonce = secrets.token_urlsafe(16)
        return {"csp_nonce": g.csp_nonce}

    @app.after_request
    def secure(response: Any) -> Any:
        if "/data/" in request.path and response.mimetype == "application/json":
            response.set_data(json.dumps(_scrub(response.get_json())))
        response.headers["Content-Security-Policy"] = csp(g.get("csp_nonce", "none"))
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def is_action(path: str) -> bool:
    """Whether ``path`` (relative to the mount) is one of the dashboard's state-changing URLs."""
    return any(p.match(path) for p in ACTION_PATTERNS)


class DashboardMount:
    """The ASGI side of the mount: method and delete policy, audit log, then the WSGI app."""

    def __init__(self, app: Flask, *, disable_delete: bool, workers: int = 4) -> None:
        self.flask = app
        self.disable_delete = disable_delete
        self.wsgi = WSGIMiddleware(app, workers=workers)  # type: ignore[arg-type]

    def relative_path(self, scope: Scope) -> str:
        """The request path below the mount, decoded once from the raw path the client sent."""
        raw = scope.get("raw_path") or scope["path"].encode()
        path = unquote(raw.split(b"?", 1)[0].decode("latin-1"))
        return path[len(PREFIX) :] or "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request of an (already authenticated and authorized) operator."""
        relative = self.relative_path(scope)
        method = scope.get("method", "GET")
        principal = scope.get("user")
        if not isinstance(principal, Principal) or not principal.operator:
            raise Unauthorized("Operator credentials are required.")  # defence in depth: the guard ran already
        if is_action(relative):
            if method in ("GET", "HEAD"):
                raise Forbidden("Dashboard actions need a POST from the dashboard itself.", headers={"Allow": "POST"})
            if self.disable_delete and any(p.match(relative) for p in DELETE_PATTERNS):
                raise Forbidden("Deleting jobs and emptying queues is disabled here.")
            log.info(
                "ops_dashboard_action",
                operator_id=str(principal.user_id),
                method=method,
                action=relative,
            )
        child: dict[str, Any] = {**scope, "root_path": PREFIX, "path": PREFIX + relative}
        await self.wsgi(child, receive, send)  # type: ignore[arg-type]
