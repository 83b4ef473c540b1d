"""Benchmark the web client's lead list at 100,000 leads: rows painted after the list's response.

Starts a real ``sdr dev`` system (gateway, auth and campaign services on a fresh migrated
database) serving the built client, signs a team up, writes 100,000 leads straight into its
``leads`` table, and drives Debian's Chromium with Playwright: for several runs it opens
``/leads`` (the first page of 100) and presses "Next page", and measures in the page the time from
the ``/api/leads`` response's end (Resource Timing) to the frame after the rows are in the DOM
(a double ``requestAnimationFrame``: the frame with the rows has been painted). Next to them,
measured in the same run: a one-row list (the same screen, searched to a single lead), and a
static HTML copy of the same 100-row table put into a blank page (no React, no fetch). It prints
median and max and PASS/FAIL against the issue's budget: each page under 300 ms (the medians;
the machine's 2 cores are shared, so a single slow frame is shown as the max, not gated).

    uv run python bench/web_leads.py                # 100,000 leads, 7 runs
    uv run python bench/web_leads.py --runs 3       # quicker
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from libs.db.migrate import upgrade  # noqa: E402
from libs.settings import normalize_database_url  # noqa: E402
from libs.webbuild import ensure_built  # noqa: E402
from tests.browser.support import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.dev import readyz, run_sdr_dev, wait_for  # noqa: E402
from tests.support.servers import create_database, drop_database  # noqa: E402

BUDGET_MS = 300.0
EMAIL = "bench@web-leads.example"
PASSWORD = "correct horse battery staple"
ROWS = "table[aria-label=Leads] tbody tr"

# Installed before every document: each frame, note when the lead table's rows change (count and
# first row), and the time of the frame after (by then the frame with the new rows was painted).
WATCH_ROWS = """
(() => {
  window.__rowPaints = [];
  let last = "";
  const tick = () => {
    const rows = document.querySelectorAll("table[aria-label=Leads] tbody tr");
    const sig = rows.length + ":" + (rows.length ? rows[0].textContent : "");
    if (rows.length && sig !== last) {
      last = sig;
      const record = { count: rows.length, first: rows[0].textContent, dom: performance.now(), painted: 0 };
      window.__rowPaints.push(record);
      requestAnimationFrame(() => { record.painted = performance.now(); });
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
"""

PAINTED = "(count) => window.__rowPaints.some((p) => p.count === count && p.painted > 0)"

# The time from the latest /api/leads response's end to the paint of the rows that followed it.
AFTER_RESPONSE = """
(count) => {
  const lists = performance.getEntriesByType("resource").filter((e) => /\\/api\\/leads\\?/.test(e.name));
  if (!lists.length) return null;
  const end = lists[lists.length - 1].responseEnd;
  const paint = window.__rowPaints.find((p) => p.dom >= end && p.count === count && p.painted > 0);
  return paint ? paint.painted - end : null;
}
"""

# A static copy of the table: the HTML put into a blank page, timed to the paint of the frame after.
STATIC_TABLE = """
(html) => new Promise((resolve) => {
  document.body.innerHTML = "";
  const start = performance.now();
  const holder = document.createElement("div");
  holder.innerHTML = html;
  document.body.appendChild(holder);
  requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - start)));
})
"""


def seed(database_url: str, leads: int) -> None:
    """Write ``leads`` leads for the only organization (as one INSERT … SELECT, spread over a day)."""
    engine = sa.create_engine(normalize_database_url(database_url), poolclass=sa.NullPool)
    with engine.begin() as conn:
        org = conn.execute(sa.text("SELECT id FROM organizations")).scalar_one()
        conn.execute(
            sa.text(
                """
                INSERT INTO leads (id, org_id, email, email_normalized, phone, first_name, last_name, company,
                                   title, custom_fields, status, created_at, updated_at)
                SELECT gen_random_uuid(), :org, 'lead' || n || '@company' || (n % 2000) || '.example',
                       'lead' || n || '@company' || (n % 2000) || '.example',
                       CASE WHEN n % 10 = 0 THEN NULL ELSE '+1415' || lpad((n % 10000000)::text, 7, '0') END,
                       'First' || n, 'Last' || (n % 97), 'Company ' || (n % 2000), 'VP Sales', '{}', 'active',
                       now() - n * interval '1 second', now()
                FROM generate_series(1, :leads) AS n
                """
            ),
            {"org": org, "leads": leads},
        )
        conn.execute(sa.text("ANALYZE leads"))
    engine.dispose()


def _stats(values: list[float]) -> str:
    return f"median {statistics.median(values):6.1f} ms   max {max(values):6.1f} ms"


def measure(gateway: str, runs: int) -> dict[str, list[float]]:
    from playwright.sync_api import expect, sync_playwright

    figures: dict[str, list[float]] = {"first": [], "next": [], "one": [], "static": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(60_000)
            page.add_init_script(WATCH_ROWS)
            page.goto(f"{gateway}/signin")
            page.get_by_label("Email").fill(EMAIL)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(re.compile(r"/$"))
            rows = page.locator(ROWS)

            def after_response(count: int) -> float:
                page.wait_for_function(PAINTED, arg=count)
                value = page.evaluate(AFTER_RESPONSE, count)
                assert value is not None, "no paint of the rows after the list's response"
                return float(value)

            table_html = ""
            for run in range(runs + 1):  # the first run warms the caches and is not counted
                page.goto(f"{gateway}/leads")
                expect(rows).to_have_count(100)
                first = after_response(100)
                table_html = page.locator("table[aria-label=Leads]").evaluate("(t) => t.outerHTML")
                before = rows.first.text_content()
                page.evaluate("window.__rowPaints = []")
                page.get_by_role("button", name="Next page").click()
                expect(page.get_by_text("Page 2:")).to_be_visible()
                expect(rows.first).not_to_have_text(before or "")
                second = after_response(100)
                page.goto(f"{gateway}/leads?q=lead42%40company42.example")
                expect(rows).to_have_count(1)
                one = after_response(1)
                if run:
                    figures["first"].append(first)
                    figures["next"].append(second)
                    figures["one"].append(one)
            blank = browser.new_page(viewport={"width": 1280, "height": 800})
            for run in range(runs + 1):
                blank.goto("about:blank")
                value = float(blank.evaluate(STATIC_TABLE, table_html))
                if run:
                    figures["static"].append(value)
        finally:
            browser.close()
    return figures


def main() -> None:
    """Run the benchmark and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is not installed (apt-get install chromium)")

    ensure_built(ROOT)
    database_url = create_database(args.database, prefix="tw_bench")
    try:
        upgrade(database_url)
        with run_sdr_dev(
            Path(tempfile.mkdtemp(prefix="tw-bench-")),
            database_url=database_url,
            redis_url=args.redis,
            extra_env={"SDR_LOG_LEVEL": "WARNING"},
        ) as system:
            wait_for(lambda: readyz(system)[0] == 200, "/readyz to be green", system, timeout=240)
            signed_up = httpx.post(
                f"{system.gateway}/api/auth/signup",
                json={"organization_name": "Bench Co", "name": "Bench", "email": EMAIL, "password": PASSWORD},
                timeout=30,
            )
            assert signed_up.status_code == 201, signed_up.text
            started = time.perf_counter()
            seed(database_url, args.leads)
            print(f"leads: {args.leads:,} written in {time.perf_counter() - started:.1f} s")
            figures = measure(system.gateway, args.runs)
    finally:
        drop_database(args.database, database_url)

    print(f"runs: {args.runs} (after one warm-up)   Chromium {CHROMIUM}, 1280x800, built client")
    print("time from the /api/leads response to the rows painted:")
    print(f"  first page (100 of {args.leads:,}):   {_stats(figures['first'])}")
    print(f"  next page (100 of {args.leads:,}):    {_stats(figures['next'])}")
    print(f"  baseline, a one-row list:           {_stats(figures['one'])}")
    print(f"  baseline, static HTML of the table: {_stats(figures['static'])}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 shared cores)")
    # The verdict is on the medians: on 2 cores shared with other work, one slow frame is the machine's.
    slowest = max(statistics.median(figures["first"]), statistics.median(figures["next"]))
    verdict = "PASS" if slowest < BUDGET_MS else "FAIL"
    print(f"{verdict}: first and next page under {BUDGET_MS:.0f} ms after the response (medians; {slowest:.1f} ms)")
    if verdict == "FAIL":
        sys.exit(1)


if __name__ == "__main__":
    main()
