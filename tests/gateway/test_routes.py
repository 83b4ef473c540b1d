"""The routing table: longest prefix wins, prefixes end at a path segment, the edge policy."""

from __future__ import annotations

import pytest

from gateway.routes import DEFAULT_ROUTES, PUBLIC_PREFIXES, RouteTable


@pytest.fixture
def table() -> RouteTable:
    return RouteTable({**DEFAULT_ROUTES, "/api/auth/special": "brand"}, PUBLIC_PREFIXES)


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        ("/api/auth/login", "auth"),
        ("/api/auth", "auth"),
        ("/api/auth/special/x", "brand"),
        ("/api/brands", "brand"),
        ("/api/brands/1/senders", "brand"),
        ("/api/credentials", "brand"),
        ("/api/campaigns/1/launch", "campaign"),
        ("/api/leads/imports", "campaign"),
        ("/hooks/twilio/sms", "campaign"),
        ("/u/token", "campaign"),
        ("/c/abc", "campaign"),
    ],
)
def test_longest_prefix_picks_the_upstream(table: RouteTable, path: str, upstream: str) -> None:
    route = table.match(path)
    assert route is not None
    assert route.upstream == upstream


@pytest.mark.parametrize("path", ["/api/brandsx", "/healthz", "/readyz", "/api/openapi.json", "/api/docs", "/u", "/x"])
def test_gateway_paths_and_near_misses_are_not_routed(table: RouteTable, path: str) -> None:
    assert table.match(path) is None


@pytest.mark.parametrize(
    ("path", "needs_token"),
    [
        ("/api/auth/login", False),
        ("/api/auth/signup", False),
        ("/api/auth/jwks.json", False),
        ("/api/auth/api-keys/exchange", False),
        ("/api/auth/invites/accept", False),
        ("/api/auth/me", True),
        ("/api/auth/loginx", True),
        ("/api/auth/api-keys", True),
        ("/api/brands", True),
        ("/hooks/twilio/sms", False),
        ("/u/token", False),
    ],
)
def test_edge_policy(table: RouteTable, path: str, needs_token: bool) -> None:
    route = table.match(path)
    assert route is not None
    assert route.needs_token is needs_token


def test_a_prefix_must_start_with_a_slash() -> None:
    with pytest.raises(ValueError, match="must start"):
        RouteTable({"api": "auth"}, ())


def test_settings_take_the_routing_table_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.settings import GatewaySettings

    monkeypatch.setenv("SDR_ROUTES", '{"/bench": "backend"}')
    monkeypatch.setenv("SDR_UPSTREAMS", '{"backend": "http://127.0.0.1:9/"}')
    settings = GatewaySettings()
    assert settings.routes == {"/bench": "backend"}
    assert settings.upstream_urls["backend"] == "http://127.0.0.1:9"
    assert settings.upstream_urls["auth"] == "http://127.0.0.1:8001"
