"""Single sign-on in a real browser: the sign-in page's provider link, the loopback provider, signed in.

``sdr dev`` runs with ``SDR_OIDC_*`` pointing at the loopback OpenID Connect provider; the browser
follows the plain link to ``/api/auth/sso/start``, the provider approves at once, the callback sets
the session cookies and the client's refresh on load opens the session.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser.support import CHROMIUM_ARGS, PAGE_TIMEOUT_MS, Evidence, chromium_or_skip
from tests.support.dev import DevSystem
from tests.support.oidc_provider import OidcProviderServer, OidcUser, oidc_provider

pytestmark = pytest.mark.e2e

EMAIL = "ada@sso.example"


@pytest.fixture
def provider() -> Iterator[OidcProviderServer]:
    with oidc_provider(user=OidcUser(subject="ada-sub", email=EMAIL, name="Ada")) as server:
        yield server


@pytest.fixture
def system_env(provider: OidcProviderServer) -> dict[str, str]:
    return {
        "SDR_OIDC_ISSUER": provider.issuer,
        "SDR_OIDC_CLIENT_ID": provider.client_id,
        "SDR_OIDC_CLIENT_SECRET": provider.client_secret,
        "SDR_OIDC_NAME": "Loopback",
    }


@pytest.mark.timeout(420)
def test_sign_in_with_the_provider_lands_signed_in(
    system: DevSystem, built: None, artifacts: Path, provider: OidcProviderServer
) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    gateway = system.gateway
    signed_up = httpx.post(
        f"{gateway}/api/auth/signup",
        json={"organization_name": "SSO Co", "name": "Ada", "email": EMAIL, "password": "correct horse battery"},
        timeout=30,
    )
    assert signed_up.status_code == 201, signed_up.text
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            evidence = Evidence(artifacts, [page])

            def sign_in() -> None:
                page.goto(f"{gateway}/signin")
                page.get_by_role("link", name="Sign in with Loopback").click()
                page.wait_for_url(re.compile(re.escape(gateway) + r"/(\?.*)?$"))
                expect(page.get_by_role("button", name="Sign out")).to_be_visible()
                assert provider.token_calls, "the provider's token endpoint was never called"

            evidence.step("sso-sign-in", sign_in)

            def refused() -> None:
                provider.user = OidcUser(subject="stranger-sub", email="stranger@sso.example")
                context = browser.new_context()
                other = context.new_page()
                other.set_default_timeout(PAGE_TIMEOUT_MS)
                other.goto(f"{gateway}/signin")
                other.get_by_role("link", name="Sign in with Loopback").click()
                other.wait_for_url(re.compile(r"/signin\?sso_error=not_invited"))
                expect(other.get_by_role("alert")).to_contain_text("invite you")

            evidence.step("sso-refused", refused)
        finally:
            browser.close()
