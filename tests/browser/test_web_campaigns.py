"""The campaign screens in a real browser, against ``sdr dev``.

An owner (brand, verified email sender on the local SMTP sink and a lead made through the API, for
speed) signs in through the UI, adds a webhook endpoint (its secret shown once), builds a two-step
email campaign with an A/B variant (a template error shows under its field; variables go in at the
cursor) after seeing a launch refused with what is missing, previews step 1 for the lead as it is
typed and gives it its own send window (kept after a reload), previews the lead's schedule, enrolls it,
launches, watches the live view count the sends, finds the email in the sink and opens the
message's page; the webhook's delivery log shows the sends. A viewer sees no launch button and the
API refuses their launch. axe checks every screen.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.axe import assert_accessible
from tests.browser.support import CHROMIUM_ARGS, PAGE_TIMEOUT_MS, Evidence, chromium_or_skip, fits
from tests.support.dev import DevSystem

pytestmark = pytest.mark.e2e

OWNER = "ada@campaigns.example"
VIEWER = "vic@campaigns.example"
PASSWORD = "correct horse battery staple"


class _Hook(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        _Hook.received.append(self.rfile.read(length))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    """A local endpoint that accepts every webhook delivery."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tidewater"
    finally:
        server.shutdown()


def _api(dev: DevSystem, token: str | None = None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=dev.gateway, headers=headers, timeout=30)


def _ok(response: httpx.Response) -> Any:
    assert response.is_success, f"{response.request.method} {response.request.url}: {response.text[:500]}"
    return response.json() if response.content else None


def _prepare(dev: DevSystem) -> dict[str, str]:
    """Owner, brand, verified sender, lead, a viewer, and a second draft campaign: through the API."""
    with _api(dev) as anonymous:
        owner = _ok(
            anonymous.post(
                "/api/auth/signup",
                json={"organization_name": "Acme", "name": "Ada", "email": OWNER, "password": PASSWORD},
            )
        )
    with _api(dev, owner["access_token"]) as api:
        brand = _ok(
            api.post(
                "/api/brands",
                json={
                    "name": "Acme",
                    "website": "https://acme.example",
                    "postal_address": "1 Main St, Springfield",
                    "opt_out_email": "Prefer not to hear from us? Unsubscribe",
                },
            )
        )
        sender = _ok(
            api.post(
                f"/api/brands/{brand['id']}/senders",
                json={
                    "kind": "email",
                    "from_name": "Ada at Acme",
                    "from_address": OWNER,
                    "smtp_host": "127.0.0.1",
                    "smtp_port": dev.sink_port,
                    "smtp_security": "none",
                    "smtp_username": "ada",
                    "smtp_password": "sink",
                },
            )
        )
        _ok(api.post(f"/api/brands/{brand['id']}/senders/{sender['id']}/verify"))
        lead = _ok(
            api.post("/api/leads", json={"first_name": "Grace", "email": "grace@hopper.example", "company": "Hopper"})
        )
        invite = _ok(api.post("/api/auth/invites", json={"email": VIEWER, "role": "viewer"}))
        other = _ok(api.post("/api/campaigns", json={"brand_id": brand["id"], "name": "Later", "timezone": "UTC"}))
        _ok(
            api.post(
                f"/api/campaigns/{other['id']}/steps",
                json={"channel": "email", "subject_template": "Hi", "body_template": "Hello {{ lead.first_name }}"},
            )
        )
    with _api(dev) as anonymous:
        viewer = _ok(
            anonymous.post(
                "/api/auth/invites/accept", json={"token": invite["token"], "password": PASSWORD, "name": "Vic"}
            )
        )
    return {"brand": brand["id"], "lead": lead["id"], "other": other["id"], "viewer_token": viewer["access_token"]}


def _sign_in(page: Any, gateway: str, email: str) -> None:
    page.goto(f"{gateway}/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/$"))


def _open(page: Any, url: str) -> None:
    """Load ``url`` afresh (the current build of the client), signing in again if the session did not survive."""
    from playwright.sync_api import expect

    page.goto(url)
    sign_in = page.get_by_role("heading", name="Sign in to Tidewater")
    expect(sign_in.or_(page.get_by_role("button", name="Sign out"))).to_be_visible()
    if sign_in.is_visible():
        page.get_by_label("Email").fill(OWNER)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(url)


def _mails(dev: DevSystem) -> list[str]:
    folder = dev.data_dir / "mail" / "new"
    return [p.read_text(errors="replace") for p in sorted(folder.glob("*"))] if folder.is_dir() else []


@pytest.mark.timeout(900)
def test_an_owner_builds_launches_and_watches_a_campaign_and_a_viewer_cannot_launch(
    built: None,
    system: DevSystem,
    artifacts: Path,
    hook: str,
) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    gateway = system.gateway
    made = _prepare(system)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            evidence = Evidence(artifacts, [page])
            nav = page.get_by_role("navigation", name="Main")

            def webhook() -> None:
                _sign_in(page, gateway, OWNER)
                nav.get_by_role("link", name="Webhooks").click()
                page.wait_for_url(re.compile(r"/webhooks$"))
                expect(page.get_by_text("No webhook endpoint yet")).to_be_visible()
                assert_accessible(page, "webhooks (empty)")
                form = page.get_by_role("form", name="Add a webhook endpoint")
                form.get_by_label("URL").fill("ftp://nowhere")
                form.get_by_role("button", name="Add endpoint").click()
                expect(form.get_by_label("URL")).to_have_attribute("aria-invalid", "true")
                form.get_by_label("URL").fill(hook)
                form.get_by_role("button", name="Add endpoint").click()
                secret = page.get_by_label("Signing secret")
                expect(secret).to_contain_text("whsec_")
                expect(page.get_by_role("list", name="Webhook endpoints")).to_contain_text(hook)
                assert_accessible(page, "webhooks (secret shown)")
                page.get_by_role("button", name="I have stored the secret").click()
                expect(page.get_by_label("Signing secret")).to_have_count(0)

            evidence.step("webhook", webhook)

            def create_campaign() -> None:
                nav.get_by_role("link", name="Campaigns").click()
                page.wait_for_url(re.compile(r"/campaigns$"))
                expect(page.get_by_role("list", name="Campaigns")).to_contain_text("Later")
                assert_accessible(page, "campaigns")
                form = page.get_by_role("form", name="Create a campaign")
                form.get_by_label("Campaign name").fill("First")
                form.get_by_label("Time zone").fill("Mars/Olympus")
                form.get_by_role("button", name="Create campaign").click()
                expect(form.get_by_label("Time zone")).to_have_attribute("aria-invalid", "true")
                form.get_by_label("Time zone").fill("UTC")
                for day in ("Saturday", "Sunday"):
                    form.get_by_label(day).check()
                form.get_by_label("Start (local time)").fill("00:00")
                form.get_by_label("End (local time)").fill("24:00")
                form.get_by_role("button", name="Create campaign").click()
                page.wait_for_url(re.compile(r"/campaigns/[0-9a-f-]{36}$"))
                expect(page.get_by_role("heading", name="First", exact=True)).to_be_visible()
                assert_accessible(page, "campaign builder (no steps)")

            evidence.step("create", create_campaign)

            def launch_refused() -> None:
                page.get_by_role("button", name="Launch campaign").click()
                gaps = page.get_by_role("list", name="What the launch still needs")
                expect(gaps).to_contain_text("add at least one step")
                assert_accessible(page, "campaign builder (launch refused)")

            evidence.step("launch-refused", launch_refused)

            def build_steps() -> None:
                form = page.get_by_role("form", name="Add a step")
                subject = form.get_by_label("Subject", exact=True)
                subject.fill(", a note from us")
                subject.press("Home")  # the cursor at the start: the variable goes there
                form.get_by_label("Variable for Subject", exact=True).select_option("lead.first_name")
                form.get_by_role("button", name="Insert into Subject", exact=True).click()
                expect(subject).to_have_value("{{ lead.first_name }}, a note from us")
                form.get_by_label("Body", exact=True).fill("Hi {{ lead.nope }}")
                form.get_by_role("button", name="Add step").click()
                body = form.get_by_label("Body", exact=True)
                expect(body).to_have_attribute("aria-invalid", "true")
                expect(body).to_have_accessible_description(re.compile("nope"))
                body.fill("Hi {{ lead.first_name }},\n\nHow is everything at {{ lead.company }}? ")
                body.press("ControlOrMeta+End")
                form.get_by_label("Variable for Body", exact=True).select_option("brand.name")
                form.get_by_role("button", name="Insert into Body", exact=True).click()
                expect(body).to_have_value(re.compile(r"\{\{ brand\.name \}\}$"))
                form.get_by_role("button", name="Add a variant").click()
                form.get_by_label("Variant 1 subject", exact=True).fill("{{ lead.first_name }}: a question")
                assert_accessible(page, "campaign builder (step with a variant)")
                form.get_by_role("button", name="Add step").click()
                steps = page.get_by_role("list", name="Steps")
                expect(steps.get_by_role("form", name="Step 1")).to_be_visible()
                expect(steps.get_by_role("form", name="Step 1").get_by_label("Variant 1 key")).to_have_value("A")
                second = page.get_by_role("form", name="Add a step")
                second.get_by_label("Wait").fill("1")
                second.get_by_label("Unit").select_option("minutes")
                second.get_by_label("Subject", exact=True).fill("Following up, {{ lead.first_name }}")
                second.get_by_label("Body", exact=True).fill("Any thoughts, {{ lead.first_name }}?")
                second.get_by_role("button", name="Add step").click()
                expect(steps.get_by_role("form", name="Step 2")).to_be_visible()
                # A saved step's copy is checked live, without a click: the error shows, then clears.
                first = steps.get_by_role("form", name="Step 1")
                saved_body = first.get_by_label("Body", exact=True)
                good = saved_body.input_value()
                saved_body.fill(good + " {{ lead.oops }}")
                expect(saved_body).to_have_attribute("aria-invalid", "true")
                expect(saved_body).to_have_accessible_description(re.compile("oops"))
                saved_body.fill(good)
                expect(first.get_by_role("status")).to_contain_text("checked and saved")
                expect(saved_body).not_to_have_attribute("aria-invalid", "true")
                assert fits(page), "the builder scrolls sideways at 390 px"

            evidence.step("steps", build_steps)

            def preview_and_own_window() -> None:
                first = page.get_by_role("list", name="Steps").get_by_role("form", name="Step 1")
                preview = first.get_by_role("region", name="Preview")
                expect(preview).to_contain_text("Pick a lead")
                preview.get_by_label("Find a lead to preview").fill("Grace")
                preview.get_by_label("Preview for lead").select_option(made["lead"])
                rendered = preview.get_by_role("article", name="Rendered message")
                expect(rendered.get_by_test_id("preview-subject")).to_have_text("Grace, a note from us")
                expect(rendered.get_by_test_id("preview-body")).to_contain_text("Hi Grace,")
                expect(rendered.get_by_test_id("preview-body")).to_contain_text("How is everything at Hopper?")
                preview.get_by_label("Preview variant").select_option("A")
                expect(rendered.get_by_test_id("preview-subject")).to_have_text("Grace: a question")
                preview.get_by_label("Preview variant").select_option("")
                # The preview follows the copy as it is typed, and names a bad variable under its field.
                body = first.get_by_label("Body", exact=True)
                good = body.input_value()
                body.fill(good + " See you soon.")
                expect(rendered.get_by_test_id("preview-body")).to_contain_text("See you soon.")
                body.fill(good)
                expect(rendered.get_by_test_id("preview-body")).not_to_contain_text("See you soon.")
                expect(first.get_by_role("status")).to_contain_text("checked and saved")
                assert_accessible(page, "campaign builder (step preview)")
                # Step 1 keeps to its own window (every day, all day), which survives a reload.
                first.get_by_label("Its own send window").check()
                own = first.get_by_role("group", name="Step 1 send window")
                for day in ("Saturday", "Sunday"):
                    own.get_by_label(day).check()
                own.get_by_label("Start (local time)").fill("00:00")
                own.get_by_label("End (local time)").fill("24:00")
                first.get_by_role("button", name="Save step 1").click()
                expect(first.get_by_role("status")).to_contain_text("Step 1 saved.")
                _open(page, page.url)
                first = page.get_by_role("list", name="Steps").get_by_role("form", name="Step 1")
                expect(first.get_by_label("Its own send window")).to_be_checked()
                own = first.get_by_role("group", name="Step 1 send window")
                expect(own.get_by_label("Sunday")).to_be_checked()
                expect(own.get_by_label("End (local time)")).to_have_value("24:00")
                second = page.get_by_role("list", name="Steps").get_by_role("form", name="Step 2")
                expect(second.get_by_label("The campaign's send window")).to_be_checked()

            evidence.step("preview-window", preview_and_own_window)

            def schedule_and_enroll() -> None:
                preview = page.get_by_role("form", name="Preview a lead's schedule")
                preview.get_by_label("Lead").select_option(label="Grace")
                preview.get_by_role("button", name="Preview schedule").click()
                table = page.get_by_role("table", name="Schedule")
                expect(table.locator("tbody tr")).to_have_count(2)
                expect(table).to_contain_text("email")
                form = page.get_by_role("form", name="Enroll leads by filter")
                form.get_by_label("Company (exact)").fill("Hopper")
                form.get_by_role("button", name="Enroll leads").click()
                expect(page.get_by_text("1 lead enrolled")).to_be_visible()
                assert_accessible(page, "campaign builder (schedule, enrolled)")

            evidence.step("schedule-enroll", schedule_and_enroll)

            def launch_and_watch() -> None:
                page.get_by_role("button", name="Launch campaign").click()
                expect(page.get_by_role("heading", name="Status: active")).to_be_visible()
                page.get_by_role("link", name="Live view").click()
                page.wait_for_url(re.compile(r"/live$"))
                expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
                sent = page.locator('[data-state="sent"] dd')
                expect(sent).to_have_text("1", timeout=90_000)
                assert_accessible(page, "live view")
                deadline = time.monotonic() + 60
                while not any("a note from" in m or "a question" in m for m in _mails(system)):
                    assert time.monotonic() < deadline, "the first email never reached the sink"
                    time.sleep(1)
                expect(sent).to_have_text("2", timeout=180_000)  # step 2, a minute later
                mails = _mails(system)
                assert len(mails) == 2, len(mails)
                assert any("Following up, Grace" in m for m in mails), mails[-1][:500]
                expect(page.get_by_role("table", name="Latest messages").locator("tbody tr")).to_have_count(2)

            evidence.step("launch-live", launch_and_watch)

            def message_page() -> None:
                link = page.get_by_role("table", name="Latest messages").get_by_role("link").last
                _open(page, gateway + str(link.get_attribute("href")))
                expect(page.get_by_role("list", name="Events")).to_contain_text("sent")
                expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
                assert_accessible(page, "message")

            evidence.step("message", message_page)

            def deliveries() -> None:
                _open(page, f"{gateway}/webhooks")
                page.get_by_role("link", name=f"Deliveries to {hook}").click()
                page.wait_for_url(re.compile(r"/webhooks/[0-9a-f-]{36}$"))
                log = page.get_by_role("list", name="Deliveries")  # it refreshes itself every 10 s
                expect(log).to_contain_text("sent · delivered", timeout=60_000)
                assert _Hook.received, "the endpoint received nothing"
                assert_accessible(page, "webhook deliveries")

            evidence.step("deliveries", deliveries)

            def wide() -> None:
                page.set_viewport_size({"width": 1280, "height": 800})
                nav.get_by_role("link", name="Campaigns").click()
                page.get_by_role("link", name="Later").click()
                expect(page.get_by_role("button", name="Launch campaign")).to_be_visible()  # the owner may
                assert fits(page), "the builder scrolls sideways at 1280 px"
                page.screenshot(path=str(artifacts / "campaign-1280.png"), full_page=True)

            evidence.step("wide", wide)

            viewer_page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            viewer_page.set_default_timeout(PAGE_TIMEOUT_MS)
            evidence = Evidence(artifacts, [page, viewer_page])

            def viewer() -> None:
                _sign_in(viewer_page, gateway, VIEWER)
                viewer_page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
                viewer_page.get_by_role("link", name="Later").click()
                expect(viewer_page.get_by_role("heading", name="Status: draft")).to_be_visible()
                expect(viewer_page.get_by_role("form", name="Step 1")).to_be_visible()
                expect(viewer_page.get_by_role("button", name="Launch campaign")).to_have_count(0)
                expect(viewer_page.get_by_role("button", name="Add step")).to_have_count(0)
                expect(viewer_page.get_by_role("form", name="Step 1").get_by_label("Body", exact=True)).to_be_disabled()
                assert_accessible(viewer_page, "campaign builder (viewer)")
                with _api(system, made["viewer_token"]) as api:
                    refused = api.post(f"/api/campaigns/{made['other']}/launch")
                assert refused.status_code == 403, refused.text[:300]
                assert refused.headers["content-type"].startswith("application/problem+json")

            evidence.step("viewer", viewer)
            assert problems == [], problems
        finally:
            browser.close()
