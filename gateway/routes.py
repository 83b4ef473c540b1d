"""The routing table (path prefix -> upstream) and the edge auth policy (which prefixes are public)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DEFAULT_ROUTES: dict[str, str] = {
    "/api/auth": "auth",
    "/api/brands": "brand",
    "/api/credentials": "brand",
    "/api/campaigns": "campaign",
    "/api/conversations": "campaign",
    "/api/leads": "campaign",
    "/api/messages": "campaign",
    "/api/suppressions": "campaign",
    "/api/webhooks": "campaign",
    "/hooks": "campaign",
    "/hooks/oauth": "brand",
    "/u/": "campaign",
    "/o/": "campaign",
    "/c/": "campaign",
}
"""Which service answers which prefix (the README's API table; override with ``SDR_ROUTES``)."""

PUBLIC_PREFIXES: tuple[str, ...] = (
    "/api/auth/signup",
    "/api/auth/login",
    "/api/auth/refresh",
    "/api/auth/logout",
    "/api/auth/jwks.json",
    "/api/auth/invites/accept",
    "/api/auth/api-keys/exchange",
    "/api/auth/sso",
    "/hooks/",
    "/u/",
    "/o/",
    "/c/",
    "/healthz",
    "/readyz",
    "/api/openapi.json",
    "/api/docs",
)
"""Prefixes anyone may call; everything else under ``/api/`` needs an access token at the edge."""

PROTECTED_ROOT = "/api/"

GATEWAY_STREAMS: tuple[str, ...] = (r"/api/campaigns/[^/]+/stream",)
"""Paths under a routed prefix that the gateway answers itself (live streams, fed by its shared poll loop)."""


def prefix_matches(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it (``/api/brands`` matches ``/api/brands/1``, not ``/api/brandsx``)."""
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/")


@dataclass(frozen=True, slots=True)
class Route:
    """Where a path goes and whether the edge must see an access token first."""

    prefix: str
    upstream: str
    needs_token: bool


class RouteTable:
    """Longest-prefix routing over a table fixed at start-up."""

    def __init__(
        self, routes: Mapping[str, str], public_prefixes: Iterable[str], local: Iterable[str] = GATEWAY_STREAMS
    ) -> None:
        for prefix in routes:
            if not prefix.startswith("/"):
                raise ValueError(f"route prefix {prefix!r} must start with '/'")
        # Longest first, so the first hit is the longest match.
        self._routes = sorted(routes.items(), key=lambda item: len(item[0]), reverse=True)
        self._public = tuple(sorted(public_prefixes, key=len, reverse=True))
        self._local = tuple(re.compile(pattern) for pattern in local)

    @property
    def upstreams(self) -> set[str]:
        """Every upstream name the table routes to."""
        return {upstream for _, upstream in self._routes}

    def is_public(self, path: str) -> bool:
        """Whether ``path`` needs no access token at the edge."""
        if not path.startswith(PROTECTED_ROOT):
            return True
        return any(prefix_matches(path, prefix) for prefix in self._public)

    def match(self, path: str) -> Route | None:
        """Return the route for ``path``, or None when the gateway answers it itself."""
        if path.endswith("/stream") and any(p.fullmatch(path) for p in self._local):
            return None
        for prefix, upstream in self._routes:
            if prefix_matches(path, prefix):
                return Route(prefix=prefix, upstream=upstream, needs_token=not self.is_public(path))
        return None
