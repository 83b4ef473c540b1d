"""Browser sessions: the refresh token in an HttpOnly cookie, and the CSRF check its use requires.

A client asks for cookie mode with ``X-Tidewater-Client: web`` on sign-up, sign-in, invite acceptance,
switching organization and changing password; refresh and sign-out are in cookie mode whenever their
body carries no refresh token. In cookie mode:

- the refresh token is never in the JSON answer; it is set as ``tidewater_refresh`` (HttpOnly,
  SameSite=Strict, Secure outside development), once with ``Path=/api/auth/refresh`` and once with
  ``Path=/api/auth/logout``, so the browser sends it to those two routes only;
- a random ``tidewater_csrf`` cookie (readable by the page, ``Path=/``) is set beside it; refresh and
  sign-out by cookie require the header ``X-CSRF-Token`` with the same value (double submit: another
  site can neither read the cookie nor set the header), else 403 ``CsrfRefused``;
- sign-out revokes the session and clears the cookies.

API clients that send no such header keep the refresh token in the JSON, as before.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any, TypeVar

from litestar import Request, Response
from litestar.datastructures import Cookie

from libs.errors import Forbidden
from libs.settings import Environment
from services.auth.schemas import TokenPair
from services.auth.settings import AuthSettings

CLIENT_HEADER = "x-tidewater-client"
WEB_CLIENT = "web"
CSRF_HEADER = "x-csrf-token"
REFRESH_COOKIE = "tidewater_refresh"
CSRF_COOKIE = "tidewater_csrf"
REFRESH_PATHS = ("/api/auth/refresh", "/api/auth/logout")
PairT = TypeVar("PairT", bound=TokenPair)


class CsrfRefused(Forbidden):
    """A call authenticated by the refresh cookie came without the matching X-CSRF-Token header."""


def wants_cookie(request: Request[Any, Any, Any]) -> bool:
    """Whether the client asked for cookie mode (``X-Tidewater-Client: web``)."""
    return request.headers.get(CLIENT_HEADER, "").strip().lower() == WEB_CLIENT


def refresh_cookie(request: Request[Any, Any, Any]) -> str | None:
    """The refresh token the browser sent as a cookie, once the CSRF header matched its cookie.

    Raises:
        CsrfRefused: the cookie came without ``X-CSRF-Token`` equal to the ``tidewater_csrf`` cookie.
    """
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        return None
    expected = request.cookies.get(CSRF_COOKIE, "")
    given = request.headers.get(CSRF_HEADER, "")
    if not expected or not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfRefused("The X-CSRF-Token header must repeat the tidewater_csrf cookie.")
    return token


def _secure(settings: AuthSettings) -> bool:
    return settings.env is not Environment.DEVELOPMENT


def session_cookies(settings: AuthSettings, refresh_token: str, max_age: int) -> list[Cookie]:
    """The refresh cookie (on its two paths) and a fresh CSRF cookie."""
    secure = _secure(settings)
    cookies = [
        Cookie(
            key=REFRESH_COOKIE,
            value=refresh_token,
            path=path,
            max_age=max_age,
            httponly=True,
            secure=secure,
            samesite="strict",
        )
        for path in REFRESH_PATHS
    ]
    cookies.append(
        Cookie(
            key=CSRF_COOKIE,
            value=secrets.token_urlsafe(32),
            path="/",
            max_age=max_age,
            httponly=False,
            secure=secure,
            samesite="strict",
        )
    )
    return cookies


def cleared_cookies(settings: AuthSettings) -> list[Cookie]:
    """Cookies that make the browser forget the session."""
    secure = _secure(settings)
    cookies = [
        Cookie(key=REFRESH_COOKIE, value="", path=path, max_age=0, httponly=True, secure=secure, samesite="strict")
        for path in REFRESH_PATHS
    ]
    cookies.append(
        Cookie(key=CSRF_COOKIE, value="", path="/", max_age=0, httponly=False, secure=secure, samesite="strict")
    )
    return cookies


def forget_csrf(settings: AuthSettings) -> str:
    """A ``Set-Cookie`` value dropping the CSRF cookie (a problem answer carries one such header)."""
    cookie = cleared_cookies(settings)[-1]
    return cookie.to_encoded_header()[1].decode("latin-1")


def answer(settings: AuthSettings, pair: PairT, *, cookie: bool, status_code: int = 200) -> Response[PairT]:
    """The JSON answer; in cookie mode without the refresh token, which goes in the cookie instead."""
    if not cookie:
        return Response(pair, status_code=status_code)
    token = pair.refresh_token or ""
    content = pair.model_copy(update={"refresh_token": None})
    return Response(
        content,
        status_code=status_code,
        cookies=session_cookies(settings, token, pair.refresh_expires_in),
        headers={"cache-control": "no-store"},
    )
