"""The web client: ``web/dist`` served at ``/``, deep links answered with ``index.html``.

Vite names every bundled file under ``/assets/`` by its content hash, so those are cached for a
year; ``index.html`` (which names the current hashes) is revalidated on every load. The pages
run under a strict Content-Security-Policy: scripts and styles only from this origin, nothing
inline, no framing. Paths of the API and the other doors (``/api``, ``/ops``, ``/hooks``, the
tracking links, health and metrics) never fall back to the client. A ``HEAD`` answers what the
``GET`` would (status and headers), without the body.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path, PurePosixPath
from typing import Any

import anyio.to_thread
from litestar import HttpMethod, Request, Response, route
from litestar.handlers import HTTPRouteHandler
from litestar.response.base import ASGIResponse

from libs.errors import NotFound, Unavailable
from libs.security import PUBLIC

WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"
"""Where ``npm run build`` (``libs.webbuild.ensure_built``) writes the client."""

RESERVED_PREFIXES: tuple[str, ...] = ("/api", "/ops", "/hooks", "/u", "/o", "/c", "/metrics", "/healthz", "/readyz")
"""Paths that belong to the API and the gateway's other doors: a miss there is a 404, never the client."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
BUILD_HINT = "The web client is not built: run `./tidewater up`, or `npm ci && npm run build` in web/."

_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def reserved(path: str) -> bool:
    """Whether ``path`` is (below) one of the reserved prefixes, by whole segments, in any spelling.

    ``//ops/rq/`` or ``/OPS/rq/`` never reach the dashboard, but they must not look like a page
    of the client either: such paths are 404 problems, like every unknown API path.
    """
    spelled = re.sub(r"/{2,}", "/", path).lower()
    return any(spelled == prefix or spelled.startswith(prefix + "/") for prefix in RESERVED_PREFIXES)


def _media_type(file: Path) -> str:
    return _TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"


def _headers(cache_control: str) -> dict[str, str]:
    return {
        "Cache-Control": cache_control,
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
    }


def _inside(dist: Path, relative: str) -> Path | None:
    """The file ``relative`` names inside ``dist``, or None (hidden files and escapes included)."""
    parts = PurePosixPath(relative).parts
    if any(part.startswith(".") or part in {"", ".."} for part in parts):
        return None
    candidate = (dist / Path(*parts)).resolve() if parts else dist
    root = dist.resolve()
    if candidate != root and root not in candidate.parents:
        return None
    return candidate if candidate.is_file() else None


def web_response(dist: Path, path: str) -> Response[bytes]:
    """Answer a GET of ``path`` from the built client in ``dist`` (raises the problem to answer instead)."""
    if reserved(path):
        raise NotFound(f"No route for {path}.")
    index = dist / "index.html"
    if not index.is_file():
        raise Unavailable(BUILD_HINT)
    relative = path.lstrip("/")
    page = index.resolve()
    file = _inside(dist, relative) if relative else page
    if file is not None and file != page:
        immutable = relative.startswith("assets/")
        return Response(
            content=file.read_bytes(),
            media_type=_media_type(file),
            headers=_headers(IMMUTABLE if immutable else REVALIDATE),
        )
    # A missing asset or file (it has an extension) is a 404; any other path is a page of the client.
    if file is None and (relative.startswith("assets/") or "." in PurePosixPath(relative).name):
        raise NotFound(f"No file {path}.")
    return Response(content=index.read_bytes(), media_type="text/html", headers=_headers(REVALIDATE))


def head_of(answer: ASGIResponse) -> ASGIResponse:
    """``answer`` as the reply to a HEAD: the GET's status and every one of its headers, no body."""
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in answer.encode_headers()]
    return ASGIResponse(body=b"", status_code=answer.status_code, headers=headers, is_head_response=True)


def web_route_handlers(dist: Path | None = None) -> list[HTTPRouteHandler]:
    """The routes that serve the client from ``dist`` (default ``web/dist``); the API's routes win over them."""
    folder = dist or WEB_DIST

    @route(
        ["/", "/{path:path}"],
        http_method=[HttpMethod.GET, HttpMethod.HEAD],
        opt=PUBLIC,
        include_in_schema=False,
        name="web_client",
    )
    async def web_client(request: Request[Any, Any, Any]) -> ASGIResponse:
        """Serve the web client (a deep link answers with ``index.html``; HEAD the same without a body)."""
        response = await anyio.to_thread.run_sync(web_response, folder, request.url.path)
        answer = response.to_asgi_response(None, request)
        return head_of(answer) if request.method == HttpMethod.HEAD else answer

    handlers: list[Any] = [web_client]
    return handlers
