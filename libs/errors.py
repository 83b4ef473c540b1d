"""One exception family for every box, rendered as RFC 9457 problem details."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://tidewater.dev/problems/"

log = structlog.get_logger(__name__)


class AppError(Exception):
    """A failure the caller can understand; its class name is the stable ``code``."""

    status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    title: str = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors or [])
        self.headers = dict(headers or {})
        self.extra = extra

    @property
    def code(self) -> str:
        """The machine-readable error code clients may switch on."""
        return type(self).__name__


class Invalid(AppError):
    """The request is well formed but breaks a rule (field errors in ``errors``)."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    title = "Invalid request"


class BadRequest(AppError):
    """The request cannot be parsed."""

    status = HTTPStatus.BAD_REQUEST
    title = "Bad request"


class Unauthorized(AppError):
    """No valid credentials were presented."""

    status = HTTPStatus.UNAUTHORIZED
    title = "Unauthorized"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(AppError):
    """The caller is known but may not do this."""

    status = HTTPStatus.FORBIDDEN
    title = "Forbidden"


class NotFound(AppError):
    """The resource does not exist for this caller (or belongs to another tenant)."""

    status = HTTPStatus.NOT_FOUND
    title = "Not found"


class Conflict(AppError):
    """The request conflicts with the current state."""

    status = HTTPStatus.CONFLICT
    title = "Conflict"


class PreconditionFailed(AppError):
    """An ``If-Match`` or version check failed."""

    status = HTTPStatus.PRECONDITION_FAILED
    title = "Precondition failed"


class PayloadTooLarge(AppError):
    """The body is larger than this route accepts."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    title = "Payload too large"


class TooManyRequests(AppError):
    """Slow down; ``Retry-After`` says for how long."""

    status = HTTPStatus.TOO_MANY_REQUESTS
    title = "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(retry_after)})
        super().__init__(detail, **kwargs)


class Unavailable(AppError):
    """A dependency is down; try again later."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    title = "Service unavailable"


def problem_body(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None = None,
    request_id: str | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build an RFC 9457 problem document."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + _slug(code),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    if errors:
        body["errors"] = list(errors)
    body.update(extra)
    return body


def _slug(code: str) -> str:
    return "".join("-" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(code))


def _request_id(request: Request[Any, Any, Any]) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else request.headers.get("x-request-id")


def _respond(
    request: Request[Any, Any, Any], body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> Response[Any]:
    return Response(content=body, status_code=body["status"], media_type=PROBLEM_JSON, headers=dict(headers or {}))


def app_error_handler(request: Request[Any, Any, Any], exc: AppError) -> Response[Any]:
    """Render a domain error."""
    body = problem_body(
        status=int(exc.status),
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        request_id=_request_id(request),
        errors=exc.errors,
        **exc.extra,
    )
    return _respond(request, body, exc.headers)


def _field_errors(extra: Any) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, Mapping):
            field = item.get("key") or "body"
            errors.append(
                {
                    "field": str(field),
                    "message": str(item.get("message", "invalid")),
                    "source": item.get("source", "body"),
                }
            )
    return errors


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Render Litestar's own errors (bad JSON, unknown route, validation) as problems."""
    status = exc.status_code
    if isinstance(exc, ValidationException):
        errors = _field_errors(exc.extra)
        # Litestar raises ValidationException for unparsable bodies too; keep 400 for those.
        code, status = ("Invalid", 422) if errors else ("BadRequest", 400)
        title = "Invalid request" if errors else "Bad request"
        detail = "One or more fields are invalid." if errors else str(exc.detail)
    else:
        errors = []
        code = (
            "".join(w.capitalize() for w in HTTPStatus(status).phrase.split())
            if status in HTTPStatus._value2member_map_
            else "Error"
        )
        title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        detail = str(exc.detail) if status < 500 else title
        if status >= 500:  # Litestar's own server errors (a misconfigured route, a dependency): logged like ours
            log.error("server_error", path=request.url.path, error_type=type(exc).__name__, exc_info=exc)
    body = problem_body(
        status=status,
        code=code,
        title=title,
        detail=detail,
        instance=request.url.path,
        request_id=_request_id(request),
        errors=errors,
    )
    return _respond(request, body, exc.headers)


def unexpected_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Log an unexpected failure and answer with a generic 500: no stack trace leaves."""
    log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    body = problem_body(
        status=500,
        code="InternalServerError",
        title="Internal server error",
        detail="Something went wrong on our side.",
        instance=request.url.path,
        request_id=_request_id(request),
    )
    return _respond(request, body)


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    AppError: app_error_handler,
    HTTPException: http_exception_handler,
    Exception: unexpected_error_handler,
}

__all__ = [
    "EXCEPTION_HANDLERS",
    "PROBLEM_JSON",
    "AppError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "problem_body",
]
