"""The first doors in a real browser: the API docs, and an operator signing in on the way to the RQ dashboard.

Chromium is Debian's (``/usr/bin/chromium``) driven by Playwright; ``sdr dev`` runs as real
processes on the test's PostgreSQL and Redis. On a failure each open page is saved as a
screenshot under ``$SDR_TEST_ARTIFACTS`` (or the test's temporary folder) and the path printed.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.browser.support import CHROMIUM_ARGS, PAGE_TIMEOUT_MS, Evidence, chromium_or_skip
from tests.support.dev import DevSystem

pytestmark = pytest.mark.e2e

OPERATOR_EMAIL = "ops@first-doors.example"
OPERATOR_PASSWORD = "operator first doors staple"


def create_operator(system: DevSystem) -> None:
    """``sdr create-operator``, then set the password with the one-time invite it prints."""
    printed = system.sdr("create-operator", OPERATOR_EMAIL).stdout
    match = re.search(r"invite token[^:]*: (\S+)", printed)
    assert match, printed
    accepted = httpx.post(
        f"{system.gateway}/api/auth/invites/accept",
        json={"token": match.group(1), "password": OPERATOR_PASSWORD},
        timeout=30,
    )
    assert accepted.is_success, accepted.text


@pytest.mark.timeout(420)
def test_api_docs_and_the_operator_sign_in_on_the_way_to_the_rq_dashboard(system: DevSystem, artifacts: Path) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    create_operator(system)
    gateway = system.gateway
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            evidence = Evidence(artifacts, [page])

            def docs() -> None:
                # Swagger UI renders only the operations near the viewport: a tall one shows many at once.
                page.set_viewport_size({"width": 1280, "height": 4000})
                response = page.goto(f"{gateway}/api/docs")
                assert response is not None
                assert response.status == 200
                operations = page.locator(".opblock")
                operations.first.wait_for(state="visible")
                operations.nth(10).wait_for(state="attached")
                assert operations.count() > 10, f"only {operations.count()} operations listed"
                expect(page.locator(".opblock-summary-path", has_text="/api/auth/login").first).to_be_visible()
                page.set_viewport_size({"width": 1280, "height": 720})

            evidence.step("api-docs", docs, " (the Swagger UI page at /api/docs lists no operations)")

            def redirected() -> None:
                page.goto(f"{gateway}/ops/rq")
                parts = urlsplit(page.url)
                assert parts.path == "/ops/login", page.url
                assert parse_qs(parts.query) == {"next": ["/ops/rq"]}
                expect(page.get_by_role("heading", name="Operator sign-in")).to_be_visible()

            evidence.step("ops-redirect", redirected)

            def sign_in() -> None:
                page.get_by_label("E-mail").fill(OPERATOR_EMAIL)
                page.get_by_label("Password").fill(OPERATOR_PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(re.compile(r"/ops/rq/?$"))
                expect(page).to_have_title("RQ dashboard")
                expect(page.get_by_role("heading", name="Queues")).to_be_visible()
                # The dashboard's own scripts ran (under its CSP) and filled the table from its JSON.
                expect(page.locator('#queues tr[data-role="loading-placeholder"]')).to_have_count(0)
                expect(page.locator("#queues tbody tr").first).to_be_visible()

            evidence.step("ops-sign-in", sign_in)
        finally:
            browser.close()
