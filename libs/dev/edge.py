"""The ``sdr`` command's edge: user errors become one line ``sdr: <reason>; <what to do>``, never a traceback.

The click group catches what escapes a command and asks :func:`translate` whether it is a
known family (PostgreSQL or Redis unreachable or refusing the login, a missing database or
an unmigrated one, a bad URL or setting, a port in use); those exit non-zero with one line
on stderr. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

import click
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DataError, InterfaceError, OperationalError, ProgrammingError

from libs.dev.state import hide_password

START_HINT = "is `./tidewater up` running?"


class CliError(click.ClickException):
    """A user error: printed as one line ``sdr: <reason>; <what to do>`` on stderr, exit code 1 (or given)."""

    exit_code = 1

    def __init__(self, reason: str, hint: str | None = None) -> None:
        super().__init__(f"{reason}; {hint}" if hint else reason)

    def show(self, file: IO[Any] | None = None) -> None:
        """Write the one line to stderr (or ``file``)."""
        click.echo(f"sdr: {self.format_message()}", file=file, err=file is None)


class BadValue(CliError):
    """A value the user gave is wrong (click's usage-error exit code 2)."""

    exit_code = 2


@dataclass
class Where:
    """The servers the current command talks to, for messages that name them."""

    database_url: str | None = None
    redis_url: str | None = None


WHERE = Where()
"""Set by the command line as it learns which servers a command uses."""


def note(*, database_url: str | None = None, redis_url: str | None = None) -> None:
    """Remember the URLs the current command uses (the last one given wins)."""
    if database_url:
        WHERE.database_url = database_url
    if redis_url:
        WHERE.redis_url = redis_url


def check_database_url(url: str, *, variable: str = "SDR_DATABASE_URL") -> None:
    """Raise :class:`CliError` unless ``url`` is a PostgreSQL URL naming a database."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BadValue(
            f"{variable} is not a valid URL ({hide_password(url)!r})",
            "set it to postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
        ) from None
    if parsed.get_backend_name() != "postgresql" or parsed.drivername not in ("postgresql", "postgresql+psycopg"):
        raise BadValue(
            f"{variable} must be a PostgreSQL URL, not {parsed.drivername}://",
            "set it to postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
        )
    if not parsed.database:
        raise BadValue(f"{variable} names no database", "add /DATABASE at the end of the URL")


def check_redis_url(url: str, *, variable: str = "SDR_REDIS_URL") -> None:
    """Raise :class:`CliError` unless ``url`` is a Redis URL the client can open."""
    from redis.connection import parse_url

    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise BadValue(f"{variable} must start with redis://, rediss:// or unix://", "e.g. redis://127.0.0.1:6379/0")
    try:
        parse_url(url)  # type: ignore[no-untyped-call]
        database = urlsplit(url).path.strip("/")
        if not url.startswith("unix://") and database and not database.isdigit():
            # redis-py would quietly use database 0 instead.
            raise ValueError(f"the database number {database!r} is not a number")
    except ValueError as exc:
        raise BadValue(f"{variable} is not a valid Redis URL ({exc})", "e.g. redis://127.0.0.1:6379/0") from None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())


_CONNECTION_TEXT = (
    "connection failed",
    "connection to server",
    "could not connect",
    "server closed the connection",
    "connection refused",
    "connection is closed",
    "terminating connection",
    "the database system is",
)


def _connection_problem(sqlstate: str | None, lowered: str) -> bool:
    # 08: connection exception, 28: invalid authorization, 3D000: no such database, 57P0x: server going away.
    if sqlstate is not None:
        return sqlstate[:2] in ("08", "28") or sqlstate in ("3D000", "57P01", "57P02", "57P03")
    return any(text in lowered for text in _CONNECTION_TEXT)


def _postgres(exc: BaseException) -> CliError | None:
    if not isinstance(exc, OperationalError | InterfaceError | ProgrammingError | DataError):
        return None
    where = hide_password(WHERE.database_url) if WHERE.database_url else "PostgreSQL"
    original = getattr(exc, "orig", None) or exc
    text = str(original)
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(exc, ProgrammingError | DataError):
        # undefined_table, or SET ROLE to a role the migrations create: the schema is not there yet.
        if sqlstate == "42P01" or (sqlstate == "22023" and "role" in text):
            return CliError(f"the database {where} is not migrated ({_first_line(text)})", "run `sdr migrate`")
        if sqlstate == "42501":  # insufficient_privilege
            return CliError(
                f"PostgreSQL at {where} refused: {_first_line(text)}",
                "the login role needs membership in tidewater_app and tidewater_system "
                "(run `sdr migrate` as a superuser)",
            )
        return None  # any other programming or data error is a bug
    if not _connection_problem(sqlstate, text.lower()):
        return None  # a deadlock, a statement timeout, ...: not the user's setup
    detail = re.sub(r"^connection failed: (connection to server at [^:]+ failed: )?", "", _first_line(text))
    detail = re.sub(r"^FATAL:\s+", "", detail)
    lowered = text.lower()
    if "does not exist" in lowered and "database" in lowered:
        return CliError(f"{detail} at {where}", "run `sdr migrate` to create it, or set SDR_DATABASE_URL")
    if "authentication failed" in lowered or "no password supplied" in lowered or "role" in lowered:
        return CliError(
            f"PostgreSQL at {where} refused the login ({detail})", "check the user and password in SDR_DATABASE_URL"
        )
    if "connection refused" in lowered:
        reason = "connection refused"
    elif "timeout" in lowered or "timed out" in lowered:
        reason = "timed out"
    elif "could not translate host name" in lowered or "name or service not known" in lowered:
        reason = "unknown host"
    else:
        reason = detail
    return CliError(
        f"cannot reach PostgreSQL at {where} ({reason})",
        f"{START_HINT} set SDR_DATABASE_URL to point at your PostgreSQL",
    )


def _redis(exc: BaseException) -> CliError | None:
    from redis import exceptions as redis_errors

    where = hide_password(WHERE.redis_url) if WHERE.redis_url else "Redis"
    if isinstance(exc, redis_errors.AuthenticationError) or (
        isinstance(exc, redis_errors.ResponseError) and str(exc).startswith(("WRONGPASS", "NOAUTH", "NOPERM"))
    ):
        return CliError(f"Redis at {where} refused the login ({exc})", "check the password in SDR_REDIS_URL")
    if isinstance(exc, redis_errors.TimeoutError):
        return CliError(
            f"cannot reach Redis at {where} (timed out)", f"{START_HINT} set SDR_REDIS_URL to point at your Redis"
        )
    if isinstance(exc, redis_errors.ConnectionError):
        text = str(exc).lower()
        reason = "connection refused" if "refused" in text else _first_line(str(exc))
        return CliError(
            f"cannot reach Redis at {where} ({reason})", f"{START_HINT} set SDR_REDIS_URL to point at your Redis"
        )
    if isinstance(exc, redis_errors.BusyLoadingError):
        return CliError(f"Redis at {where} is still loading its data", "try again in a moment")
    return None


def _settings(exc: BaseException) -> CliError | None:
    if not isinstance(exc, ValidationError) or not exc.title.endswith("Settings"):
        return None
    problems = []
    for error in exc.errors():
        field = "_".join(str(part) for part in error.get("loc", ()) if isinstance(part, str))
        name = f"SDR_{field.upper()}" if field else "a setting"
        problems.append(f"{name}: {error.get('msg', 'invalid')}")
    return BadValue("invalid settings (" + "; ".join(problems) + ")", "fix the variables (or .env)")


def _address_in_use(exc: BaseException) -> CliError | None:
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return CliError(
            f"address already in use ({exc.strerror or exc})",
            "stop what listens there, or choose another port (SDR_*_PORT or --port)",
        )
    return None


def _evicting(exc: BaseException) -> CliError | None:
    from libs.queue import RedisEvicts

    if isinstance(exc, RedisEvicts):
        return CliError(str(exc).rstrip("."), "run Redis with maxmemory-policy noeviction")
    return None


FAMILIES = (_postgres, _redis, _settings, _address_in_use, _evicting)


def translate(exc: BaseException) -> CliError | None:
    """Return the one-line error for a known user-error family, or ``None`` (a bug: keep the traceback).

    Follows explicit ``raise ... from`` causes, so a wrapped connection error is still recognised.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, CliError):
            return current
        for family in FAMILIES:
            error = family(current)
            if error is not None:
                return error
        current = current.__cause__
    return None
