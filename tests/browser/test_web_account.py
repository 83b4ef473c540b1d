"""Browser sessions and the account screens in a real browser.

A new owner signs up; the refresh token is an HttpOnly cookie the page cannot read and nothing is kept
in localStorage or sessionStorage; a reload and a second tab (same browser context) are still signed
in. The owner changes the password (the other tab carries on with the session its sibling shared),
creates an API key and sees its secret once, invites a teammate who accepts the link in another
browser, and signs out: the other tab is signed out on its next step, and a reload stays signed out.
axe runs on every screen. The system and browser are those of ``test_web_client``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.axe import assert_accessible
from tests.browser.support import CHROMIUM_ARGS, PAGE_TIMEOUT_MS, Evidence, chromium_or_skip, fits
from tests.support.dev import DevSystem

pytestmark = pytest.mark.e2e

EMAIL = "grace@web-account.example"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a different long enough passphrase"
TEAMMATE = "linus@web-account.example"


def _storage(page: Any) -> str:
    return str(page.evaluate("JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"))


@pytest.mark.timeout(600)
def test_a_browser_session_survives_reloads_and_tabs_and_the_account_screens_work(
    built: None,
    system: DevSystem,
    artifacts: Path,
) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    gateway = system.gateway
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844})
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gateway)
            first = context.new_page()
            first.set_default_timeout(PAGE_TIMEOUT_MS)
            problems: list[str] = []
            first.on("pageerror", lambda e: problems.append(str(e)))
            pages = [first]
            evidence = Evidence(artifacts, pages)

            def sign_up() -> None:
                first.goto(f"{gateway}/signup")
                first.get_by_label("Organization name").fill("Analytical Engines")
                first.get_by_label("Your name").fill("Grace")
                first.get_by_label("Email").fill(EMAIL)
                first.get_by_label("Password").fill(PASSWORD)
                first.get_by_role("button", name="Create account").click()
                first.wait_for_url(re.compile(r"/$"))
                expect(first.get_by_role("heading", name="Get ready to send")).to_be_visible()
                cookies = {(c["name"], c["path"]): c for c in context.cookies()}
                for path in ("/api/auth/refresh", "/api/auth/logout"):
                    refresh = cookies[("tidewater_refresh", path)]
                    assert refresh["httpOnly"] is True, refresh
                    assert refresh["sameSite"] == "Strict", refresh
                csrf = cookies[("tidewater_csrf", "/")]
                assert csrf["httpOnly"] is False
                readable = str(first.evaluate("document.cookie"))
                assert "tidewater_csrf=" in readable
                assert "tidewater_refresh" not in readable, "the page can read the refresh token"
                assert _storage(first) == "[[],[]]", _storage(first)

            evidence.step("sign-up", sign_up)

            def reload_stays_signed_in() -> None:
                first.reload()
                expect(first.get_by_role("heading", name="Get ready to send")).to_be_visible()
                expect(first.get_by_role("button", name="Sign out")).to_be_visible()
                assert first.url.rstrip("/") == gateway.rstrip("/")
                assert _storage(first) == "[[],[]]"

            evidence.step("reload", reload_stays_signed_in)

            second = context.new_page()
            second.set_default_timeout(PAGE_TIMEOUT_MS)
            second.on("pageerror", lambda e: problems.append(str(e)))
            pages.append(second)

            def second_tab() -> None:
                second.goto(f"{gateway}/account")
                expect(second.get_by_role("heading", name="Your account")).to_be_visible()
                expect(second.get_by_text(EMAIL)).to_be_visible()
                expect(second.get_by_text("You belong to no other organization.")).to_be_visible()
                assert_accessible(second, "account")

            evidence.step("second-tab", second_tab)

            def both_tabs_reload_at_once() -> None:
                # Both tabs refresh on start with the same rotating cookie: one at a time (Web Lock),
                # or the second would present a spent token and the whole session would be revoked.
                for _ in range(3):
                    first.evaluate("setTimeout(() => location.reload(), 0)")
                    second.evaluate("setTimeout(() => location.reload(), 0)")
                    first.wait_for_load_state("load")
                    second.wait_for_load_state("load")
                    expect(first.get_by_role("button", name="Sign out")).to_be_visible()
                    expect(second.get_by_role("heading", name="Your account")).to_be_visible()
                first.reload()
                expect(first.get_by_role("heading", name="Get ready to send")).to_be_visible()

            evidence.step("tabs-reload", both_tabs_reload_at_once)

            def change_password() -> None:
                first.get_by_role("link", name=re.compile("Grace")).click()
                first.wait_for_url(re.compile(r"/account$"))
                first.get_by_label("Current password").fill("not it at all")
                first.get_by_label("New password").fill(NEW_PASSWORD)
                first.get_by_role("button", name="Change password").click()
                current = first.get_by_label("Current password")
                expect(first.locator(".form-error, .field__error").first).to_be_visible()
                current.fill(PASSWORD)
                first.get_by_role("button", name="Change password").click()
                expect(first.get_by_role("status").filter(has_text="Password changed")).to_be_visible()
                assert_accessible(first, "account (password changed)")
                # The other tab's session was replaced by the one its sibling shared: it still works.
                second.get_by_role("navigation", name="Account").get_by_role("link", name="Members").click()
                members = second.get_by_role("list", name="Members")
                expect(members.get_by_text(EMAIL)).to_be_visible()
                assert second.url.endswith("/account/members")

            evidence.step("password", change_password)

            def api_key_once() -> None:
                first.get_by_role("navigation", name="Account").get_by_role("link", name="API keys").click()
                first.wait_for_url(re.compile(r"/account/api-keys$"))
                expect(first.get_by_text("No API keys yet.")).to_be_visible()
                assert_accessible(first, "API keys (empty)")
                first.get_by_role("button", name="Create key").click()  # no name, no scope: refused by field
                expect(first.get_by_label("Key name")).to_have_attribute("aria-invalid", "true")
                first.get_by_label("Key name").fill("Nightly sync")
                first.get_by_label("Key role").select_option("member")
                first.get_by_role("checkbox", name="brands:read").check()
                first.get_by_role("button", name="Create key").click()
                secret = first.get_by_label("The secret of Nightly sync.")
                expect(secret).to_have_text(re.compile(r"^twk_\S{20,}$"))
                key = secret.inner_text()
                first.get_by_role("button", name="Copy").click()
                expect(first.get_by_text("Copied.")).to_be_visible()
                assert first.evaluate("navigator.clipboard.readText()") == key
                keys = first.get_by_role("list", name="API keys")
                expect(keys.get_by_role("heading", name="Nightly sync")).to_be_visible()
                assert_accessible(first, "API keys (secret shown)")
                assert fits(first), "the API keys screen scrolls sideways at 390 px"
                # The key works against the API, and the secret is never shown again.
                me = httpx.get(f"{gateway}/api/brands", headers={"Authorization": f"Bearer {key}"}, timeout=30)
                assert me.status_code == 200, me.text
                first.reload()
                expect(keys.get_by_role("heading", name="Nightly sync")).to_be_visible()
                assert key not in first.content()
                expect(first.get_by_text(re.compile("^twk_\\S{20,}$"))).to_have_count(0)

            evidence.step("api-key", api_key_once)

            invite_url: list[str] = []

            def invite_and_providers() -> None:
                first.get_by_role("navigation", name="Account").get_by_role("link", name="Members").click()
                first.wait_for_url(re.compile(r"/account/members$"))
                first.get_by_label("Email").fill(TEAMMATE)
                first.get_by_label("Role", exact=True).select_option("member")
                first.get_by_role("button", name="Send invite").click()
                link = first.get_by_label(f"The invite link for {TEAMMATE}.")
                expect(link).to_have_text(re.compile(r"/invite#twi_"))
                invite_url.append(link.inner_text())
                expect(first.get_by_text(f"{TEAMMATE} · member · pending")).to_be_visible()
                assert_accessible(first, "members")
                first.get_by_role("navigation", name="Account").get_by_role("link", name="Provider credentials").click()
                expect(first.get_by_text("No provider credentials yet.")).to_be_visible()
                assert_accessible(first, "provider credentials")
                first.set_viewport_size({"width": 1280, "height": 800})
                assert_accessible(first, "provider credentials at 1280 px")
                first.set_viewport_size({"width": 390, "height": 844})

            evidence.step("members", invite_and_providers)

            def teammate_accepts() -> None:
                other = browser.new_context(viewport={"width": 390, "height": 844})
                try:
                    page = other.new_page()
                    page.set_default_timeout(PAGE_TIMEOUT_MS)
                    page.goto(invite_url[0])
                    expect(page.get_by_role("heading", name="Join your team on Tidewater")).to_be_visible()
                    assert_accessible(page, "invite acceptance")
                    page.get_by_label("Your name").fill("Linus")
                    page.get_by_label("Password").fill("teammate long passphrase")
                    page.get_by_role("button", name="Accept the invite").click()
                    page.wait_for_url(re.compile(r"/$"))
                    expect(page.get_by_role("link", name=re.compile("Linus · Analytical Engines"))).to_be_visible()
                    page.reload()  # a cookie session too
                    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
                finally:
                    other.close()

            evidence.step("invite", teammate_accepts)

            def manage_the_teammate() -> None:
                first.get_by_role("navigation", name="Account").get_by_role("link", name="Members").click()
                members = first.get_by_role("list", name="Members")
                expect(members.get_by_text(f"{TEAMMATE} · member")).to_be_visible()
                expect(first.get_by_text(f"{TEAMMATE} · member · accepted")).to_be_visible()
                first.get_by_label("Role of Linus", exact=True).select_option("admin")
                first.get_by_role("button", name="Change role").click()
                expect(members.get_by_text(f"{TEAMMATE} · admin")).to_be_visible()
                assert_accessible(first, "members (with a teammate)")
                first.get_by_role("button", name="Remove Linus").click()
                expect(members.get_by_text(TEAMMATE)).to_have_count(0)
                expect(members.get_by_text(f"{EMAIL} · owner (you)")).to_be_visible()

            evidence.step("manage-teammate", manage_the_teammate)

            def sign_out_everywhere() -> None:
                held = {c["name"]: c["value"] for c in context.cookies() if c["path"] in ("/", "/api/auth/refresh")}
                first.get_by_role("button", name="Sign out").click()
                first.wait_for_url(re.compile(r"/signin$"))
                # The other tab is told at once (BroadcastChannel); were it not, its next call would be refused.
                second.wait_for_url(re.compile(r"/signin\?next=%2Faccount%2Fmembers$"))
                expect(second.get_by_role("heading", name="Sign in to Tidewater")).to_be_visible()
                assert not [c for c in context.cookies() if c["name"] == "tidewater_refresh"], context.cookies()
                second.reload()
                second.wait_for_url(re.compile(r"/signin"))
                first.goto(f"{gateway}/account")
                first.wait_for_url(re.compile(r"/signin\?next=%2Faccount$"))
                # The session is revoked on the server: the refresh token the browser held is refused.
                replay = httpx.post(
                    f"{gateway}/api/auth/refresh",
                    json={},
                    headers={
                        "Cookie": "; ".join(f"{name}={value}" for name, value in held.items()),
                        "X-CSRF-Token": held["tidewater_csrf"],
                    },
                    timeout=30,
                )
                assert replay.status_code == 401, replay.text

            evidence.step("sign-out", sign_out_everywhere)
            assert problems == [], problems
        finally:
            browser.close()
