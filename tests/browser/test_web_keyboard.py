"""Sign-up to launch with the keyboard alone, in a real browser against ``sdr dev``.

A new owner signs up, follows the onboarding checklist (a brand with its postal address and opt-out
wording, an email sender on the local SMTP sink, its live verification), imports a one-lead CSV
(the file picker opened from the keyboard), creates a campaign with one email step, enrolls the
lead and launches: Tab, Shift+Tab, Enter, Space, arrow keys and typing only, never a click or a
fill. Locators only check where the focus is. At several steps the focused control shows a focus
ring, and axe runs on every screen visited.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.axe import assert_accessible
from tests.browser.support import CHROMIUM_ARGS, PAGE_TIMEOUT_MS, Evidence, chromium_or_skip
from tests.support.dev import DevSystem

pytestmark = pytest.mark.e2e

EMAIL = "kay@keyboard.example"
PASSWORD = "correct horse battery staple"
FOCUS_STEPS = 80

FOCUS_RING = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return "nothing is focused";
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
  return outline || style.boxShadow !== "none" ? "" : `no focus ring on ${el.outerHTML.slice(0, 120)}`;
}"""


def _focused(target: Any) -> bool:
    return bool(target.evaluate("(el) => el === document.activeElement"))


def tab_to(page: Any, target: Any, *, back: bool = False) -> None:
    """Press Tab (Shift+Tab with ``back``) until ``target`` has the focus."""
    target.wait_for(state="visible")
    for _ in range(FOCUS_STEPS):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        if _focused(target):
            return
    raise AssertionError(f"{FOCUS_STEPS} presses of {'Shift+Tab' if back else 'Tab'} never reached {target}")


def type_into(page: Any, target: Any, text: str, *, back: bool = False, replace: bool = False) -> None:
    """Tab to a field and type ``text`` (over what it holds with ``replace``)."""
    tab_to(page, target, back=back)
    if replace:
        page.keyboard.press("ControlOrMeta+A")
        page.keyboard.press("Backspace")
    page.keyboard.type(text)


def assert_focus_ring(page: Any, where: str) -> None:
    problem = page.evaluate(FOCUS_RING)
    assert not problem, f"{where}: {problem}"


@pytest.mark.timeout(600)
def test_sign_up_to_launch_with_the_keyboard_alone(
    built: None,  # first: sdr dev starts on a built client
    system: DevSystem,
    artifacts: Path,
) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import FilePayload, expect, sync_playwright

    gateway = system.gateway
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            evidence = Evidence(artifacts, [page])
            keyboard = page.keyboard
            nav = page.get_by_role("navigation", name="Main")

            def sign_up() -> None:
                page.goto(f"{gateway}/signup")
                form = page.get_by_role("form", name="Sign up")
                assert_accessible(page, "sign up")
                type_into(page, form.get_by_label("Organization name"), "Keys Ltd")
                assert_focus_ring(page, "sign up: organization name")
                type_into(page, form.get_by_label("Your name"), "Kay")
                type_into(page, form.get_by_label("Email"), EMAIL)
                type_into(page, form.get_by_label("Password"), PASSWORD)
                tab_to(page, form.get_by_role("button", name="Create account"))
                assert_focus_ring(page, "sign up: the submit button")
                keyboard.press("Enter")
                page.wait_for_url(re.compile(r"/$"))
                expect(page.get_by_role("heading", name="Get ready to send")).to_be_visible()
                assert_accessible(page, "onboarding checklist")

            evidence.step("sign-up", sign_up)

            def brand() -> None:
                checklist = page.get_by_role("list", name="Onboarding checklist")
                tab_to(page, checklist.get_by_role("link", name=re.compile("Create a brand")))
                assert_focus_ring(page, "checklist: the first step's link")
                keyboard.press("Enter")
                page.wait_for_url(re.compile(r"/brands$"))
                form = page.get_by_role("form", name="Create a brand")
                assert_accessible(page, "brands (empty)")
                type_into(page, form.get_by_label("Brand name"), "Keys")
                type_into(page, form.get_by_label("Website"), "https://keys.example")
                type_into(page, form.get_by_label("Postal address"), "1 Key St, Springfield")
                type_into(page, form.get_by_label("Email opt-out wording"), "Prefer not to hear from us? Unsubscribe")
                keyboard.press("Enter")  # submits the form from its last field
                created = form.get_by_role("status")
                expect(created).to_contain_text("Brand Keys created.")
                assert_accessible(page, "brands (created)")
                tab_to(page, created.get_by_role("link", name="Add its email sender"), back=True)
                keyboard.press("Enter")
                page.wait_for_url(re.compile(r"/brands/[0-9a-f-]{36}/senders$"))

            evidence.step("brand", brand)

            def sender() -> None:
                form = page.get_by_role("form", name="Add an email sender")
                expect(page.get_by_text("No email sender yet")).to_be_visible()
                assert_accessible(page, "senders (empty)")
                type_into(page, form.get_by_label("From name"), "Kay at Keys")
                type_into(page, form.get_by_label("From address"), EMAIL)
                type_into(page, form.get_by_label("SMTP host"), "127.0.0.1")
                type_into(page, form.get_by_label("SMTP port"), str(system.sink_port), replace=True)
                security = form.get_by_label("Connection security")
                tab_to(page, security)
                assert_focus_ring(page, "senders: the security select")
                keyboard.press("End")  # the last option: none (the local sink speaks no TLS)
                expect(security).to_have_value("none")
                type_into(page, form.get_by_label("SMTP username"), "kay")
                type_into(page, form.get_by_label("SMTP password"), "sink")
                keyboard.press("Enter")
                senders = page.get_by_role("list", name="Email senders")
                expect(senders).to_contain_text("Not verified")
                verify = senders.get_by_role("button", name=f"Verify {EMAIL}")
                tab_to(page, verify, back=True)
                assert_focus_ring(page, "senders: the verify button")
                keyboard.press("Enter")
                expect(senders.get_by_text("Verified", exact=True)).to_be_visible(timeout=60_000)
                assert_accessible(page, "senders (verified)")
                tab_to(page, page.get_by_role("link", name="Back to the checklist"), back=True)
                keyboard.press("Enter")
                expect(page.get_by_text("email campaigns can launch")).to_be_visible()
                assert_accessible(page, "onboarding checklist (done)")

            evidence.step("sender", sender)

            def import_lead() -> None:
                tab_to(page, nav.get_by_role("link", name="Leads"), back=True)
                keyboard.press("Enter")
                page.wait_for_url(re.compile(r"/leads$"))
                tab_to(page, page.get_by_role("link", name="Import leads from a CSV"))
                keyboard.press("Enter")
                page.wait_for_url(re.compile(r"/leads/import$"))
                form = page.get_by_role("form", name="Import leads")
                tab_to(page, form.get_by_label("CSV file"))
                assert_focus_ring(page, "import: the file picker")
                with page.expect_file_chooser() as chooser:
                    keyboard.press("Space")  # opens the system's file dialog; the test answers it
                chooser.value.set_files(
                    files=[
                        FilePayload(
                            name="one.csv",
                            mimeType="text/csv",
                            buffer=b"email,first_name,company\r\ngrace@hopper.example,Grace,Hopper\r\n",
                        )
                    ]
                )
                expect(page.get_by_role("region", name="Column mapping and first rows")).to_contain_text("Grace")
                assert_accessible(page, "lead import (preview)")
                tab_to(page, form.get_by_role("button", name="Start import"))
                keyboard.press("Enter")
                page.wait_for_url(re.compile(r"/leads/imports/[0-9a-f-]{36}$"))
                status = page.locator("[data-status]")
                expect(status).to_have_attribute("data-status", "completed", timeout=60_000)
                assert_accessible(page, "import progress (done)")

            evidence.step("import", import_lead)

            def campaign() -> None:
                tab_to(page, nav.get_by_role("link", name="Campaigns"), back=True)
                keyboard.press("Enter")
                page.wait_for_url(re.compile(r"/campaigns$"))
                form = page.get_by_role("form", name="Create a campaign")
                expect(form.get_by_label("Brand")).to_contain_text("Keys")
                assert_accessible(page, "campaigns (empty)")
                type_into(page, form.get_by_label("Campaign name"), "By keys")
                type_into(page, form.get_by_label("Time zone"), "UTC", replace=True)
                tab_to(page, form.get_by_role("button", name="Create campaign"))
                keyboard.press("Enter")
                page.wait_for_url(re.compile(r"/campaigns/[0-9a-f-]{36}$"))
                expect(page.get_by_role("heading", name="By keys", exact=True)).to_be_visible()
                assert_accessible(page, "campaign builder (no steps)")
                step = page.get_by_role("form", name="Add a step")
                type_into(page, step.get_by_label("Subject", exact=True), "A note for {{ lead.first_name }}")
                assert_focus_ring(page, "builder: the subject field")
                type_into(page, step.get_by_label("Body", exact=True), "Hi {{ lead.first_name }},")
                keyboard.press("Enter")  # a new line in the body, not a submit
                keyboard.type("How is {{ lead.company }}?")
                tab_to(page, step.get_by_role("button", name="Add step"))
                assert_focus_ring(page, "builder: the add step button")
                keyboard.press("Enter")
                steps = page.get_by_role("list", name="Steps")
                expect(steps.get_by_role("form", name="Step 1")).to_be_visible()
                expect(steps.get_by_role("form", name="Step 1").get_by_label("Body", exact=True)).to_have_value(
                    "Hi {{ lead.first_name }},\nHow is {{ lead.company }}?"
                )
                assert_accessible(page, "campaign builder (one step)")

            evidence.step("campaign", campaign)

            def enroll_and_launch() -> None:
                enroll = page.get_by_role("form", name="Enroll leads by filter")
                tab_to(page, enroll.get_by_role("button", name="Enroll leads"))
                assert_focus_ring(page, "builder: the enroll button")
                keyboard.press("Enter")
                expect(page.get_by_text("1 lead enrolled")).to_be_visible()
                launch = page.get_by_role("button", name="Launch campaign")
                tab_to(page, launch, back=True)
                assert_focus_ring(page, "builder: the launch button")
                keyboard.press("Enter")
                expect(page.get_by_role("heading", name="Status: active")).to_be_visible()
                assert_accessible(page, "campaign builder (launched)")

            evidence.step("enroll-launch", enroll_and_launch)
            assert problems == [], problems
        finally:
            browser.close()
