"""The web client in a real browser: a new team signs up, follows the onboarding checklist to a
verified email sender on the local SMTP sink, signs out, and sees a sign-in error next to its field.

The client is built first (``libs.webbuild.ensure_built``, as ``./tidewater up`` does); ``sdr dev``
serves ``web/dist`` through the gateway. Chromium, screenshots and the system are those of
``test_first_doors``. The flow runs at phone width (390 px), then the screens are checked at 1280 px.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.browser.axe import assert_accessible
from tests.browser.support import CHROMIUM_ARGS, PAGE_TIMEOUT_MS, Evidence, chromium_or_skip, fits
from tests.support.dev import DevSystem

pytestmark = pytest.mark.e2e

EMAIL = "ada@web-client.example"
PASSWORD = "correct horse battery staple"


@pytest.mark.timeout(600)
def test_a_new_team_signs_up_and_gets_an_email_sender_verified_in_the_browser(
    built: None,  # first: sdr dev starts on a built client
    system: DevSystem,
    artifacts: Path,
) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    gateway = system.gateway
    index = httpx.get(f"{gateway}/brands", timeout=10)
    assert index.status_code == 200, index.text[:500]
    assert "default-src 'self'" in index.headers["content-security-policy"]
    assert '<script type="module"' in index.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", index.text), "index.html has an inline script"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844})
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            evidence = Evidence(artifacts, [page])

            def to_sign_up() -> None:
                page.goto(f"{gateway}/")
                page.wait_for_url(re.compile(r"/signin$"))
                expect(page.get_by_role("heading", name="Sign in to Tidewater")).to_be_visible()
                assert_accessible(page, "sign-in")
                page.get_by_role("link", name="Create an account").click()
                page.wait_for_url(re.compile(r"/signup$"))
                assert_accessible(page, "sign-up")

            evidence.step("to-sign-up", to_sign_up)

            def sign_up_with_the_keyboard() -> None:
                page.keyboard.press("Tab")
                expect(page.get_by_label("Organization name")).to_be_focused()
                page.keyboard.type("Acme")
                page.keyboard.press("Tab")
                expect(page.get_by_label("Your name")).to_be_focused()
                page.keyboard.type("Ada")
                page.keyboard.press("Tab")
                page.keyboard.type(EMAIL)
                page.keyboard.press("Tab")
                expect(page.get_by_label("Password")).to_be_focused()
                page.keyboard.type("short")
                page.keyboard.press("Enter")  # the server refuses it: the error sits under the field
                password = page.get_by_label("Password")
                expect(password).to_have_attribute("aria-invalid", "true")
                expect(password).to_have_accessible_description(re.compile(r"12"))
                expect(page.locator(".form-error")).to_contain_text("invalid")
                assert_accessible(page, "sign-up (with a field error)")
                password.press("ControlOrMeta+a")
                page.keyboard.type(PASSWORD)
                page.keyboard.press("Enter")
                page.wait_for_url(re.compile(r"/$"))
                expect(page.get_by_role("heading", name="Get ready to send")).to_be_visible()
                expect(page.get_by_text("0 of 5 steps done")).to_be_visible()
                expect(page.get_by_role("button", name="Sign out")).to_be_visible()
                assert_accessible(page, "onboarding")

            evidence.step("sign-up", sign_up_with_the_keyboard)

            def create_brand() -> None:
                page.get_by_role("navigation", name="Main").get_by_role("link", name="Brands").click()
                page.wait_for_url(re.compile(r"/brands$"))
                expect(page.get_by_text("No brands yet")).to_be_visible()
                assert_accessible(page, "brands (empty)")
                form = page.get_by_role("form", name="Create a brand")
                form.get_by_label("Brand name").fill("Acme")
                form.get_by_label("Website").fill("https://acme.example")
                form.get_by_label("Postal address").fill("1 Main St, Springfield")
                form.get_by_label("Email opt-out wording").fill("Prefer not to hear from us? Unsubscribe")
                form.get_by_role("button", name="Create brand").click()
                expect(page.get_by_role("status").filter(has_text="Brand Acme created")).to_be_visible()
                expect(page.get_by_role("list", name="Brands").get_by_role("heading", name="Acme")).to_be_visible()
                assert fits(page), "the brands screen scrolls sideways at 390 px"
                assert_accessible(page, "brands")
                page.get_by_role("link", name="Checklist for Acme").click()
                expect(page.get_by_text("3 of 5 steps done")).to_be_visible()
                expect(page.locator('[data-step="postal_address"]')).to_contain_text("(done)")
                expect(page.locator('[data-step="email_sender"]')).to_contain_text("(to do)")

            evidence.step("create-brand", create_brand)

            def add_and_verify_sender() -> None:
                page.get_by_role("link", name=re.compile("Add an email sender")).click()
                page.wait_for_url(re.compile(r"/brands/[^/]+/senders$"))
                expect(page.get_by_text("No email sender yet")).to_be_visible()
                assert_accessible(page, "senders (empty)")
                form = page.get_by_role("form", name="Add an email sender")
                form.get_by_label("From name").fill("Ada at Acme")
                form.get_by_label("From address").fill(EMAIL)
                form.get_by_label("SMTP host").fill("127.0.0.1")
                form.get_by_label("SMTP port").fill(str(system.sink_port))
                form.get_by_label("Connection security").select_option("none")
                form.get_by_label("SMTP username").fill("ada")
                form.get_by_label("SMTP password").fill("sink")
                form.get_by_role("button", name="Add sender").click()
                senders = page.get_by_role("list", name="Email senders")
                expect(senders.get_by_text("Not verified")).to_be_visible()
                senders.get_by_role("button", name=f"Verify {EMAIL}").click()
                expect(senders.get_by_text("Verified", exact=True)).to_be_visible()
                assert fits(page), "the senders screen scrolls sideways at 390 px"
                assert_accessible(page, "senders")
                page.screenshot(path=str(artifacts / "senders-390.png"), full_page=True)
                page.get_by_role("link", name="Back to the checklist").click()
                expect(page.get_by_text("5 of 5 steps done")).to_be_visible()
                expect(page.get_by_text("email campaigns can launch")).to_be_visible()
                assert_accessible(page, "onboarding (done)")

            evidence.step("sender", add_and_verify_sender)

            def wide_screens() -> None:
                page.set_viewport_size({"width": 1280, "height": 800})
                page.get_by_role("navigation", name="Main").get_by_role("link", name="Brands").click()
                expect(page.get_by_role("form", name="Create a brand")).to_be_visible()
                assert fits(page), "the brands screen scrolls sideways at 1280 px"
                assert_accessible(page, "brands at 1280 px")
                page.screenshot(path=str(artifacts / "brands-1280.png"), full_page=True)
                # A deep link loads the client, which restores the session from its refresh cookie.
                page.goto(f"{gateway}/brands")
                page.wait_for_url(re.compile(r"/brands$"))
                expect(page.get_by_role("list", name="Brands").get_by_role("heading", name="Acme")).to_be_visible()

            evidence.step("wide", wide_screens)

            def sign_out_and_fail_to_sign_in() -> None:
                page.get_by_role("button", name="Sign out").click()
                page.wait_for_url(re.compile(r"/signin$"))
                page.goto(f"{gateway}/")
                page.wait_for_url(re.compile(r"/signin$"))
                page.get_by_label("Email").fill(EMAIL)
                page.get_by_role("button", name="Sign in").click()  # no password
                password = page.get_by_label("Password")
                expect(password).to_have_attribute("aria-invalid", "true")
                error = page.locator(".field", has=password).locator(".field__error")
                expect(error).to_be_visible()
                expect(error).to_have_text(re.compile(r"\S"))
                assert password.get_attribute("aria-describedby") == error.get_attribute("id")
                expect(page.get_by_label("Email")).not_to_have_attribute("aria-invalid", "true")
                password.fill("not the password at all")
                page.get_by_role("button", name="Sign in").click()
                expect(page.locator(".form-error")).to_contain_text(re.compile(r"email or password", re.IGNORECASE))
                assert page.url.endswith("/signin")

            evidence.step("sign-out", sign_out_and_fail_to_sign_in)
            csp = [text for text in problems if "Content Security Policy" in text]
            assert csp == [], csp
        finally:
            browser.close()
