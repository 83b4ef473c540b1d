"""The leads screens in a real browser: a CSV dropped on the import screen with one bad row, its
column mapping previewed and changed, the progress bar polled to done, the rejected-rows report
downloaded; the cursor-paged lead list searched; a lead's timeline and erasure; the suppression
list (add one, import a CSV, search, export). axe runs on every screen, at 390 px, then 1280 px.
A second test pages through 1,000 leads (written straight into the table): next and previous show
other leads and come back to the same ones, the page label follows, and a filter pages to its end.

The team signs up through the API (quicker); the browser then signs in through the UI, since the
session lives in the page's memory only.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.axe import assert_accessible
from tests.browser.support import CHROMIUM_ARGS, PAGE_TIMEOUT_MS, Evidence, chromium_or_skip, fits
from tests.support.dev import DevSystem

pytestmark = pytest.mark.e2e

EMAIL = "ada@web-leads.example"
PASSWORD = "correct horse battery staple"
GOOD_ROWS = 120  # more than one page of 100
BAD_EMAIL = "not-an-address"


def _leads_csv() -> str:
    lines = ["E-mail,First Name,Company,Colour"]
    lines.append("grace@hopper.example,Grace,Hopper Labs,blue")
    lines += [f"lead{n}@bulk.example,Lead{n},Bulk Co,green" for n in range(GOOD_ROWS - 1)]
    lines.insert(5, f"{BAD_EMAIL},Bad,Nowhere,red")  # data row 5 (file line 6)
    return "\r\n".join(lines) + "\r\n"


def _drop_file(page: Any, selector: str, name: str, text: str) -> None:
    """Drop a file on an element the way a person dragging it from the desktop does."""
    page.evaluate(
        """([selector, name, text]) => {
            const zone = document.querySelector(selector);
            const data = new DataTransfer();
            data.items.add(new File([text], name, { type: "text/csv" }));
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
            }
        }""",
        [selector, name, text],
    )


@pytest.mark.timeout(600)
def test_leads_are_imported_searched_erased_and_suppressed_in_the_browser(
    built: None,  # first: sdr dev starts on a built client
    system: DevSystem,
    artifacts: Path,
) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import FilePayload, expect, sync_playwright

    gateway = system.gateway
    signed_up = httpx.post(
        f"{gateway}/api/auth/signup",
        json={"organization_name": "Leads Co", "name": "Ada", "email": EMAIL, "password": PASSWORD},
        timeout=30,
    )
    assert signed_up.status_code == 201, signed_up.text

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844}, accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            evidence = Evidence(artifacts, [page])
            nav = page.get_by_role("navigation", name="Main")

            def sign_in() -> None:
                page.goto(f"{gateway}/leads")
                page.wait_for_url(re.compile(r"/signin\?next=%2Fleads$"))
                page.get_by_label("Email").fill(EMAIL)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(re.compile(r"/leads$"))
                expect(page.get_by_role("heading", name="Leads", exact=True)).to_be_visible()
                expect(page.get_by_text("No leads yet")).to_be_visible()
                assert fits(page), "the leads screen scrolls sideways at 390 px"
                assert_accessible(page, "leads (empty)")

            evidence.step("sign-in", sign_in)

            def preview_and_map() -> None:
                page.get_by_role("link", name="Import leads from a CSV").click()
                page.wait_for_url(re.compile(r"/leads/import$"))
                expect(page.get_by_text("No imports yet.")).to_be_visible()
                assert_accessible(page, "lead import (empty)")
                form = page.get_by_role("form", name="Import leads")
                form.get_by_role("button", name="Start import").click()  # no file yet: said under the field
                file_input = form.get_by_label("CSV file")
                expect(file_input).to_have_attribute("aria-invalid", "true")
                expect(file_input).to_have_accessible_description(re.compile("Choose a CSV file first"))
                _drop_file(page, '[data-testid="dropzone"]', "leads.csv", _leads_csv())
                table = page.get_by_role("region", name="Column mapping and first rows")
                expect(table.get_by_role("cell", name="grace@hopper.example")).to_be_visible()
                expect(
                    page.get_by_role("status").filter(has_text=f"leads.csv: about {GOOD_ROWS + 1} rows")
                ).to_be_visible()
                # The server's synonyms, detected before the upload: E-mail is the email, Colour a custom field.
                expect(table.get_by_label("“E-mail” goes to")).to_have_value("email")
                expect(table.get_by_label("“First Name” goes to")).to_have_value("first_name")
                expect(table.get_by_label("“Colour” goes to")).to_have_value("custom")
                # Mapping two columns to one field is refused next to the column, before any upload.
                table.get_by_label("“Colour” goes to").select_option("company")
                expect(table.get_by_label("“Company” goes to")).to_have_value("custom")
                table.get_by_label("“Company” goes to").select_option("company")
                expect(table.get_by_label("“Colour” goes to")).to_have_value("custom")
                table.get_by_label("“Colour” goes to").select_option("ignore")
                assert fits(page), "the import screen scrolls sideways at 390 px"
                assert_accessible(page, "lead import (preview)")
                page.screenshot(path=str(artifacts / "import-preview-390.png"), full_page=True)

            evidence.step("preview", preview_and_map)

            def import_to_done() -> None:
                page.get_by_role("form", name="Import leads").get_by_role("button", name="Start import").click()
                page.wait_for_url(re.compile(r"/leads/imports/[0-9a-f-]{36}$"))
                status = page.locator("[data-status]")
                expect(status).to_have_attribute("data-status", "completed", timeout=60_000)
                expect(status).to_contain_text(f"Done: {GOOD_ROWS + 1} rows read")
                progress = page.get_by_label("Progress")
                assert progress.evaluate("(bar) => bar.value") == 1
                stats = page.get_by_role("definition")
                expect(stats.nth(0)).to_have_text(str(GOOD_ROWS))  # imported
                expect(stats.nth(2)).to_have_text("1")  # rejected
                used = page.get_by_role("region", name="Column mapping used")
                expect(used.get_by_role("row", name=re.compile(r"E-mail\s+Email"))).to_be_visible()
                expect(used.get_by_text("Colour")).to_have_count(0)  # ignored: not in the mapping used
                assert fits(page), "the import progress screen scrolls sideways at 390 px"
                assert_accessible(page, "import progress (done)")
                page.screenshot(path=str(artifacts / "import-done-390.png"), full_page=True)

            evidence.step("import", import_to_done)

            def download_report() -> None:
                with page.expect_download() as info:
                    page.get_by_role("button", name="Download rejected rows (CSV)").click()
                download = info.value
                assert download.suggested_filename.endswith("-rejected.csv"), download.suggested_filename
                report = Path(download.path()).read_text(encoding="utf-8").splitlines()
                assert report[0].startswith("row,reason,E-mail,First Name,Company,Colour"), report
                assert len(report) == 2, report
                assert report[1].startswith("6,"), report  # the file's line 6 (the header is line 1)
                assert BAD_EMAIL in report[1], report

            evidence.step("report", download_report)

            def page_and_search() -> None:
                page.get_by_role("link", name="Leads of this import").click()
                page.wait_for_url(re.compile(r"/leads\?import_id="))
                rows = page.get_by_role("table", name="Leads").get_by_role("row")
                response_seen: list[float] = []
                page.on(
                    "response",
                    lambda r: response_seen.append(time.perf_counter()) if "/api/leads?" in r.url else None,
                )
                expect(rows).to_have_count(101)  # a header and one page of 100
                page.get_by_role("button", name="Next page").click()
                page.wait_for_function(
                    f"() => document.querySelectorAll('table[aria-label=Leads] tbody tr').length === {GOOD_ROWS - 100}",
                    polling="raf",
                )
                if response_seen:  # a figure to watch, not a gate
                    elapsed = 1000 * (time.perf_counter() - response_seen[-1])
                    print(f"\nlead list: page 2 ({GOOD_ROWS - 100} rows) rendered {elapsed:.0f} ms after its response")
                expect(page.get_by_text("Page 2:")).to_be_visible()
                expect(page.get_by_role("button", name="Next page")).to_be_disabled()
                page.get_by_role("button", name="Previous page").click()
                expect(rows).to_have_count(101)
                nav.get_by_role("link", name="Leads").click()
                search = page.get_by_role("search", name="Search leads")
                search.get_by_label("Search").fill("grace")
                search.get_by_label("Search").press("Enter")
                page.wait_for_url(re.compile(r"/leads\?q=grace$"))
                expect(rows).to_have_count(2)
                expect(page.get_by_role("cell", name="Hopper Labs")).to_be_visible()
                search.get_by_label("Search").fill("nobody-at-all")
                search.get_by_role("button", name="Search").click()
                expect(page.get_by_text("No lead matches.")).to_be_visible()
                assert_accessible(page, "leads (no match)")
                search.get_by_label("Search").fill("grace")
                search.get_by_label("Search").press("Enter")
                assert fits(page), "the lead list scrolls sideways at 390 px"
                assert_accessible(page, "leads (search)")
                page.get_by_role("link", name="grace@hopper.example").click()
                page.wait_for_url(re.compile(r"/leads/[0-9a-f-]{36}$"))
                expect(page.get_by_role("heading", name="grace@hopper.example")).to_be_visible()
                expect(page.get_by_text("Not enrolled in any campaign.")).to_be_visible()
                expect(page.get_by_text("Nothing has happened to this lead yet.")).to_be_visible()
                assert fits(page), "the lead screen scrolls sideways at 390 px"
                assert_accessible(page, "lead")
                page.screenshot(path=str(artifacts / "lead-390.png"), full_page=True)

            evidence.step("list", page_and_search)

            def erase() -> None:
                page.get_by_role("button", name="Erase this lead…").click()
                confirm = page.get_by_role("alertdialog", name="Erase grace@hopper.example?")
                expect(confirm.get_by_role("button", name="Erase for good")).to_be_focused()
                assert_accessible(page, "lead (erase confirmation)")
                page.keyboard.press("Escape")  # changes nothing
                expect(confirm).to_have_count(0)
                page.get_by_role("button", name="Erase this lead…").click()
                page.keyboard.press("Enter")  # on the focused "Erase for good"
                page.wait_for_url(re.compile(r"/leads$"))
                expect(page.get_by_role("status").filter(has_text="grace@hopper.example was erased")).to_be_visible()

            evidence.step("erase", erase)

            def suppressions() -> None:
                nav.get_by_role("link", name="Suppressions").click()
                page.wait_for_url(re.compile(r"/suppressions$"))
                table = page.get_by_role("table", name="Suppressions")
                expect(table.get_by_text("(erased contact)")).to_be_visible()  # the erasure just made
                assert_accessible(page, "suppressions")
                add = page.get_by_role("form", name="Add a suppression")
                add.get_by_role("button", name="Add suppression").click()  # empty: said under the field
                value = add.get_by_label("Email, phone or domain")
                expect(value).to_have_attribute("aria-invalid", "true")
                assert_accessible(page, "suppressions (field error)")
                value.fill("blocked@spam.example")
                add.get_by_label("Channel").select_option("email")
                add.get_by_role("button", name="Add suppression").click()
                expect(add.get_by_role("status")).to_contain_text("blocked@spam.example is suppressed")
                expect(table.get_by_role("cell", name="blocked@spam.example")).to_be_visible()
                upload = page.get_by_role("form", name="Import suppressions")
                upload.get_by_label("Suppressions CSV").set_input_files(
                    files=[
                        FilePayload(
                            name="suppressions.csv",
                            mimeType="text/csv",
                            buffer=b"value,reason\nother@spam.example,bounce\nspam-domain.example,\n",
                        )
                    ]
                )
                upload.get_by_role("button", name="Import suppressions").click()
                expect(upload.get_by_role("status")).to_contain_text("2 added")
                search = page.get_by_role("search", name="Search suppressions")
                search.get_by_label("Search suppressions").fill("other@")
                search.get_by_label("Search suppressions").press("Enter")
                expect(table.get_by_role("row")).to_have_count(2)
                expect(table.get_by_role("cell", name="other@spam.example")).to_be_visible()
                assert fits(page), "the suppressions screen scrolls sideways at 390 px"
                with page.expect_download() as info:
                    page.get_by_role("button", name="Export CSV").click()
                exported = Path(info.value.path()).read_text(encoding="utf-8")
                assert exported.startswith("value,kind,channel,reason,source,created_at"), exported[:200]
                assert "blocked@spam.example,email,email,manual" in exported, exported
                assert "other@spam.example" in exported, exported
                assert "spam-domain.example" in exported, exported

            evidence.step("suppressions", suppressions)

            def wide() -> None:
                page.set_viewport_size({"width": 1280, "height": 800})
                assert fits(page), "the suppressions screen scrolls sideways at 1280 px"
                page.screenshot(path=str(artifacts / "suppressions-1280.png"), full_page=True)
                nav.get_by_role("link", name="Leads").click()
                expect(page.get_by_role("table", name="Leads").get_by_role("row")).to_have_count(101)
                assert fits(page), "the lead list scrolls sideways at 1280 px"
                assert_accessible(page, "leads (1280 px)")
                page.screenshot(path=str(artifacts / "leads-1280.png"), full_page=True)
                page.get_by_role("link", name="Import leads from a CSV").click()
                recent = page.get_by_role("list", name="Recent imports")
                expect(recent.get_by_role("link", name="leads.csv")).to_be_visible()
                assert fits(page), "the import screen scrolls sideways at 1280 px"
                assert_accessible(page, "lead import (1280 px)")

            evidence.step("wide", wide)
            assert [text for text in problems if "Content Security Policy" in text] == [], problems
        finally:
            browser.close()


PAGING_LEADS = 1_000


def _seed_leads(database_url: str, count: int) -> None:
    """``count`` leads for the only organization, straight into the table (one INSERT … SELECT).

    Lead n is n seconds old, so the list (newest first) shows lead0001 … lead0100 on page 1; the odd
    ones are at Alpha Co, the even ones at Beta Co.
    """
    import sqlalchemy as sa

    from libs.settings import normalize_database_url

    engine = sa.create_engine(normalize_database_url(database_url), poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            org = conn.execute(sa.text("SELECT id FROM organizations")).scalar_one()
            conn.execute(
                sa.text(
                    """
                    INSERT INTO leads (id, org_id, email, email_normalized, first_name, company, custom_fields,
                                       status, created_at, updated_at)
                    SELECT gen_random_uuid(), :org, 'lead' || lpad(n::text, 4, '0') || '@paging.example',
                           'lead' || lpad(n::text, 4, '0') || '@paging.example', 'Lead' || n,
                           CASE WHEN n % 2 = 1 THEN 'Alpha Co' ELSE 'Beta Co' END, '{}', 'active',
                           now() - n * interval '1 second', now()
                    FROM generate_series(1, :count) AS n
                    """
                ),
                {"org": org, "count": count},
            )
    finally:
        engine.dispose()


@pytest.mark.timeout(600)
def test_the_lead_list_pages_through_a_thousand_leads_and_keeps_its_filters(
    built: None,
    system: DevSystem,
    artifacts: Path,
) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    gateway = system.gateway
    signed_up = httpx.post(
        f"{gateway}/api/auth/signup",
        json={"organization_name": "Paging Co", "name": "Ada", "email": EMAIL, "password": PASSWORD},
        timeout=30,
    )
    assert signed_up.status_code == 201, signed_up.text
    _seed_leads(system.env["SDR_DATABASE_URL"], PAGING_LEADS)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            evidence = Evidence(artifacts, [page])
            table = page.get_by_role("table", name="Leads")
            rows = table.locator("tbody tr")
            label = page.get_by_role("status").filter(has_text=re.compile(r"^Page \d+:"))
            pager = page.get_by_role("navigation", name="Pages of leads")
            search = page.get_by_role("search", name="Search leads")

            def emails() -> list[str]:
                return [str(text) for text in rows.locator("td:first-child").all_inner_texts()]

            def sign_in() -> None:
                page.goto(f"{gateway}/leads")
                page.wait_for_url(re.compile(r"/signin\?next=%2Fleads$"))
                page.get_by_label("Email").fill(EMAIL)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(re.compile(r"/leads$"))

            evidence.step("sign-in", sign_in)

            def next_and_back() -> None:
                expect(label).to_have_text("Page 1: 100 leads")
                expect(rows).to_have_count(100)
                expect(rows.first).to_contain_text("lead0001@paging.example")  # newest first
                first = emails()
                expect(pager.get_by_role("button", name="Previous page")).to_be_disabled()
                pager.get_by_role("button", name="Next page").click()
                expect(label).to_have_text("Page 2: 100 leads")
                expect(rows.first).to_contain_text("lead0101@paging.example")
                second = emails()
                assert len(second) == 100, len(second)
                assert not set(first) & set(second), (first[:3], second[:3])
                pager.get_by_role("button", name="Next page").click()
                expect(label).to_have_text("Page 3: 100 leads")
                expect(rows.first).to_contain_text("lead0201@paging.example")
                pager.get_by_role("button", name="Previous page").click()
                expect(label).to_have_text("Page 2: 100 leads")
                assert emails() == second
                pager.get_by_role("button", name="Previous page").click()
                expect(label).to_have_text("Page 1: 100 leads")
                assert emails() == first
                expect(pager.get_by_role("button", name="Previous page")).to_be_disabled()
                assert_accessible(page, "leads (1,000, page 1)")

            evidence.step("pages", next_and_back)

            def filtered_pages() -> None:
                pager.get_by_role("button", name="Next page").click()
                expect(label).to_have_text("Page 2: 100 leads")
                search.get_by_label("Company").fill("Beta Co")
                search.get_by_role("button", name="Search").click()
                page.wait_for_url(re.compile(r"/leads\?company=Beta\+Co$"))
                expect(label).to_have_text("Page 1: 100 leads")  # a new filter starts at page 1
                expect(rows.first).to_contain_text("lead0002@paging.example")
                seen: list[str] = []
                for number in range(1, 6):  # 500 Beta Co leads: five full pages, then no next
                    expect(label).to_have_text(f"Page {number}: 100 leads")
                    page_emails = emails()
                    companies = set(rows.locator("td:nth-child(4)").all_inner_texts())
                    assert companies == {"Beta Co"}, (number, companies)
                    assert not set(seen) & set(page_emails), number
                    seen += page_emails
                    if number < 5:
                        pager.get_by_role("button", name="Next page").click()
                assert len(seen) == PAGING_LEADS // 2
                assert seen[-1] == "lead1000@paging.example", seen[-1]
                expect(pager.get_by_role("button", name="Next page")).to_be_disabled()
                pager.get_by_role("button", name="Previous page").click()
                expect(label).to_have_text("Page 4: 100 leads")
                assert set(rows.locator("td:nth-child(4)").all_inner_texts()) == {"Beta Co"}
                search.get_by_label("Search").fill("lead0999")
                search.get_by_label("Search").press("Enter")
                expect(page.get_by_text("No lead matches.")).to_be_visible()  # 999 is at Alpha Co
                search.get_by_label("Company").fill("")
                search.get_by_label("Search").press("Enter")
                expect(label).to_have_text("Page 1: 1 lead")
                expect(rows).to_have_count(1)
                expect(rows.first).to_contain_text("lead0999@paging.example")
                expect(pager.get_by_role("button", name="Next page")).to_be_disabled()
                assert_accessible(page, "leads (1,000, filtered)")

            evidence.step("filters", filtered_pages)
            assert problems == [], problems
        finally:
            browser.close()
