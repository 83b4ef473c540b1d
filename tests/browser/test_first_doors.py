"""The first doors in a real browser: the API docs, and an operator signing in on the way to the RQ dashboard.

Chromium is Debian's (``/usr/bin/chromium``) driven by Playwright; ``sdr dev`` runs as real
processes on the test's PostgreSQL and Redis. On a failure each open page is saved as a
screenshot under ``$SDR_TEST_ARTIFACTS`` (or the test's temporary folder) and the path printed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from redis import Redis

from tests.conftest import REDIS_TEST_DB
from tests.support.dev import DevSystem, readyz, run_sdr_dev, wait_for
from tests.support.servers import create_database, drop_database

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OPERATOR_EMAIL = "ops@first-doors.example"
OPERATOR_PASSWORD = "operator first doors staple"
PAGE_TIMEOUT_MS = 30_000


def chromium_or_skip() -> Path:
    """Debian's Chromium; without it, skip (fail under CI, where it must be installed)."""
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"{CHROMIUM} is not installed (apt-get install chromium); the browser test needs it"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def artifacts(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Where screenshots of a failure go."""
    base = os.environ.get("SDR_TEST_ARTIFACTS")
    folder = (Path(base) if base else tmp_path / "artifacts") / re.sub(r"[^\w.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def system(tmp_path: Path, pg_server_url: str, template_db: str, redis_server_url: str) -> Iterator[DevSystem]:
    """``sdr dev`` on a fresh database and a flushed Redis database, green on /readyz."""
    database_url = create_database(pg_server_url, template=template_db)
    redis_url = redis_server_url.rsplit("/", 1)[0] + f"/{REDIS_TEST_DB}"
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    try:
        with run_sdr_dev(
            tmp_path, database_url=database_url, redis_url=redis_url, extra_env={"SDR_LOG_LEVEL": "WARNING"}
        ) as running:
            wait_for(lambda: readyz(running)[0] == 200, "/readyz to be green", running, timeout=180)
            yield running
    finally:
        redis.flushdb()
        redis.close()
        drop_database(pg_server_url, database_url)


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


class Evidence:
    """Screenshots of every open page when a step fails, and the step's name in the error."""

    def __init__(self, folder: Path, pages: list[Any]) -> None:
        self.folder = folder
        self.pages = pages

    def step(self, name: str, action: Callable[[], None], hint: str = "") -> None:
        try:
            action()
        except BaseException as exc:
            shots = []
            for index, page in enumerate(self.pages):
                path = self.folder / f"{name}-{index}.png"
                try:
                    page.screenshot(path=str(path), full_page=True)
                    shots.append(f"{path} ({page.url})")
                except Exception as shot_error:  # the browser may be gone; say so, keep the real error
                    shots.append(f"{path}: no screenshot ({shot_error!r})")
            print(f"\nscreenshots of the failed step {name!r}:\n  " + "\n  ".join(shots))
            raise AssertionError(f"browser step {name!r} failed{hint}: {exc}\nscreenshots: {shots}") from exc


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
                response = page.goto(f"{gateway}/api/docs")
                assert response is not None
                assert response.status == 200
                operations = page.locator(".opblock")
                operations.first.wait_for(state="visible")
                assert operations.count() > 10, f"only {operations.count()} operations listed"
                expect(page.locator(".opblock-summary-path", has_text="/api/auth/login").first).to_be_visible()

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
