"""Structured logging: JSON in production, readable in development, context on every line.

No line carries a request body or a secret: values under secret-named keys are redacted, and a
traceback (in either format) lists files, lines and source, never a frame's local variables, which
would hold the body, the parsed password or a decrypted key.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

import structlog
from litestar.logging.config import BaseLoggingConfig
from litestar.types import GetLogger, Logger
from pydantic import ValidationError
from sqlalchemy.exc import StatementError

_SECRET_KEYS = re.compile(r"(password|secret|token|authorization|api_key|cookie)", re.IGNORECASE)
_REDACTED = "[redacted]"


_MAX_DEPTH = 8


def _scrubbed(value: Any, depth: int = 0) -> Any:
    """``value`` with every value under a secret-named key replaced, in nested dicts and lists too."""
    if depth >= _MAX_DEPTH:
        return _REDACTED if isinstance(value, dict | list | tuple) else value
    if isinstance(value, dict):
        return {
            k: _REDACTED if isinstance(k, str) and _SECRET_KEYS.search(k) else _scrubbed(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrubbed(v, depth + 1) for v in value)
    return value


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Replace values whose key names a secret, at any depth, whatever the caller passed."""
    for key in list(event):
        if key == "event":
            continue
        if _SECRET_KEYS.search(key):
            event[key] = _REDACTED
        elif isinstance(event[key], dict | list | tuple):
            event[key] = _scrubbed(event[key])
    return event


def _hide_statement_parameters(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Keep a failed SQL statement's bound parameters (request values, secrets) out of its traceback.

    SQLAlchemy's errors print ``[parameters: {...}]`` unless told to hide them; the statement stays.
    """
    exc_info = event.get("exc_info")
    if exc_info is True:
        exc_info = sys.exc_info()
    error = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    seen: set[int] = set()
    while isinstance(error, BaseException) and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, StatementError):
            error.hide_parameters = True
        error = error.__cause__ or error.__context__
    return event


def _without_inputs(error: ValidationError) -> str:
    """A pydantic error's message without the ``input_value=...`` it quotes (a password, a key)."""
    lines = [f"{error.error_count()} validation error(s) for {error.title}"]
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        location = ".".join(str(part) for part in item["loc"]) or "(root)"
        lines.append(f"{location}: {item['msg']} [type={item['type']}]")
    return "\n".join(lines)


def format_exception(exc_info: Any) -> str:
    """A plain traceback (files, lines, source) that quotes no validated input and no frame locals."""
    error = exc_info[1]
    if error is None:
        return "NoneType: None"
    rendered = traceback.TracebackException(type(error), error, error.__traceback__)
    pending = [(rendered, error)]
    seen: set[int] = set()
    while pending:
        node, exc = pending.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, ValidationError):
            node._str = _without_inputs(exc)  # type: ignore[attr-defined]  # printed after the type
        if node.__cause__ is not None and exc.__cause__ is not None:
            pending.append((node.__cause__, exc.__cause__))
        if node.__context__ is not None and exc.__context__ is not None:
            pending.append((node.__context__, exc.__context__))
    return "".join(rendered.format()).rstrip("\n")


def _console_traceback(sio: TextIO, exc_info: Any) -> None:
    sio.write("\n" + format_exception(exc_info))


def _stderr_logger(*_: Any) -> structlog.PrintLogger:
    # Resolve sys.stderr on every logger so redirected or replaced streams are honoured.
    return structlog.PrintLogger(file=sys.stderr)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that always writes to the current ``sys.stderr``."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure_logging(*, service: str, level: str = "INFO", json: bool = False) -> None:
    """Configure structlog and the standard library once per process."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
        _hide_statement_parameters,
    ]
    # Both formats render tracebacks as plain text (format_exception): no frame locals (the default
    # console formatter prints them, and they hold request bodies and secrets), no validated input.
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), exception_formatter=_console_traceback)
    )
    render = [structlog.processors.ExceptionRenderer(format_exception), renderer] if json else [renderer]
    structlog.configure(
        processors=[*shared, *render],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared, processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render]
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx and Twilio's client log every request at INFO, Twilio's with its body (the message text).
    for noisy in ("uvicorn.access", "httpx", "httpcore", "twilio.http_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclass
class ProcessLoggingConfig(BaseLoggingConfig):
    """Litestar's logging config for our apps: keep what :func:`configure_logging` set up.

    Litestar's default config replaces the root logger's handlers with its own (no redaction, plain
    format) when an app is built, and can log every uncaught exception itself. Here it changes
    nothing, and leaves exception logging to the apps' exception handlers (``libs.errors``).
    """

    log_exceptions: Literal["always", "debug", "never"] = "never"
    traceback_line_limit: int = -1
    exception_logging_handler: Any = None
    disable_stack_trace: set[int | type[Exception]] = field(default_factory=set)

    def configure(self) -> GetLogger:
        """Return the standard library's ``getLogger``; the process configured it already."""
        return logging.getLogger

    @staticmethod
    def set_level(logger: Logger, level: int) -> None:
        """Set ``logger``'s level (Litestar calls this when ``app.debug`` changes)."""
        logger.setLevel(level)


def get_logger(name: str | None = None) -> Any:
    """Return a structlog logger; bind context with ``structlog.contextvars``."""
    return structlog.get_logger(name)
