"""CSV imports end to end: upload, the RQ job, progress, reports, and every kind of bad file."""

from __future__ import annotations

import codecs
import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from services.campaign.leads import filestore
from services.campaign.settings import CampaignSettings
from tests.conftest import ROOT
from tests.services.campaign.leads.conftest import Actor
from tests.support.dns import Zone, dns_server


def imported(actor: Actor, content: bytes, run_jobs: Any, **fields: str) -> dict[str, Any]:
    r = actor.upload(content, **fields)
    assert r.status_code == 202, r.text
    assert run_jobs() == 1
    body = actor.get(f"/api/leads/imports/{r.json()['id']}").json()
    assert body["status"] in ("completed", "failed")
    return dict(body)


def report(actor: Actor, item: dict[str, Any]) -> list[list[str]]:
    r = actor.get(item["report_url"])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(r.text)))


def leads(actor: Actor, **params: Any) -> list[dict[str, Any]]:
    return list(actor.get("/api/leads", params={"limit": 200, **params}).json()["items"])


def assert_accounted(item: dict[str, Any]) -> None:
    total = item["rows_imported"] + item["rows_updated"] + item["rows_rejected"] + item["rows_duplicate"]
    assert total == item["rows_read"], item


def test_import_maps_columns_validates_rows_and_reports_rejections(alice: Actor, run_jobs: Any) -> None:
    content = (
        b"Work Email,Given Name,Mobile,Org,Plan,TZ,SMS consent\r\n"
        b"ann@example.com,Ann,(212) 555-0100,Acme,gold,,yes\r\n"
        b"bob@example.com,Bob,,Beta,,Europe/Paris,no\r\n"
        b"not-an-email,Carl,,,,,\r\n"
        b",Dan,+44 20 7946 0958,,,,\r\n"
        b"eve@example.com,Eve,,,,Nowhere/Land,\r\n"
        b",,,,,,\r\n"
    )
    mapping = '{"Org": "company", "SMS consent": "consent_sms", "Plan": "custom:plan"}'
    item = imported(alice, content, run_jobs, mapping=mapping, consent_source="trade show list")
    assert item["status"] == "completed"
    assert (item["rows_read"], item["rows_imported"], item["rows_rejected"]) == (5, 3, 2)
    assert item["mapping"]["Work Email"] == "email"
    assert_accounted(item)
    by_email = {lead["email"]: lead for lead in leads(alice)}
    ann = by_email["ann@example.com"]
    assert (ann["first_name"], ann["company"], ann["phone"]) == ("Ann", "Acme", "+12125550100")
    assert ann["timezone"] == "America/New_York"
    assert ann["custom_fields"] == {"plan": "gold"}
    assert ann["consent_sms_source"] == "trade show list"
    assert ann["import_id"] == item["id"]
    assert by_email["bob@example.com"]["timezone"] == "Europe/Paris"
    assert by_email["bob@example.com"]["consent_sms_at"] is None
    assert by_email[None]["phone"] == "+442079460958"
    rows = report(alice, item)
    assert rows[0] == ["row", "reason", "Work Email", "Given Name", "Mobile", "Org", "Plan", "TZ", "SMS consent"]
    assert [r[0] for r in rows[1:]] == ["4", "6"]
    assert rows[1][1].startswith("email:")
    assert rows[2][1].startswith("timezone:")


def test_reimport_updates_existing_leads_and_dedupes_by_email_else_phone(alice: Actor, run_jobs: Any) -> None:
    alice.create_lead(email="ann@example.com", first_name="Ann", company="Old")
    alice.create_lead(email=None, phone="+12125550100", first_name="Phone only")
    item = imported(alice, b"email,phone,company\nANN@example.com,,New\n,212-555-0100,PhoneCo\n", run_jobs)
    assert (item["rows_imported"], item["rows_updated"]) == (0, 2)
    companies = {lead["first_name"]: lead["company"] for lead in leads(alice)}
    assert companies == {"Ann": "New", "Phone only": "PhoneCo"}


def test_duplicate_heavy_file_keeps_the_first_row_and_reports_the_rest(
    alice: Actor, run_jobs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDR_IMPORT_CHUNK_ROWS", "7")  # duplicates cross chunk boundaries too
    lines = ["email,first_name"] + [f"{'SAME' if i % 2 else 'same'}@example.com,n{i}" for i in range(40)]
    lines += [f"u{i}@example.com,u{i}" for i in range(3)]
    item = imported(alice, "\n".join(lines).encode(), run_jobs)
    assert (item["rows_read"], item["rows_imported"], item["rows_duplicate"]) == (43, 4, 39)
    assert_accounted(item)
    assert [lead["first_name"] for lead in leads(alice, email="same@example.com")] == ["n0"]
    reasons = {row[1] for row in report(alice, item)[1:]}
    assert reasons == {"Duplicate of an earlier row of this file."}


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (codecs.BOM_UTF8 + "email,first_name\nj@example.com,José\n".encode(), "utf-8"),
        ("email,first_name\nj@example.com,José\n".encode("utf-16"), "utf-16"),
        ("email,first_name\nj@example.com,José\n".encode("utf-16-le"), "utf-16-le"),
        ("email,first_name\nj@example.com,José\n".encode("cp1252"), "utf-8"),
        ("email;first_name\r\nj@example.com;José\r\n".encode("latin-1"), "utf-8"),
        ("email\tfirst_name\nj@example.com\tJosé\n".encode(), "utf-8"),
    ],
)
def test_encodings_and_delimiters(alice: Actor, run_jobs: Any, encoded: bytes, encoding: str) -> None:
    item = imported(alice, encoded, run_jobs)
    assert item["rows_imported"] == 1, item
    assert item["encoding"] == encoding
    assert leads(alice)[0]["first_name"] == "José"


def test_a_file_mixing_utf8_and_latin1_imports_both_and_rejects_undecodable_rows(alice: Actor, run_jobs: Any) -> None:
    content = b"email,first_name\na@example.com,Jos\xc3\xa9\nb@example.com,Jos\xe9\nc@example.com,bad\x81\n"
    item = imported(alice, content, run_jobs)
    assert (item["rows_imported"], item["rows_rejected"]) == (2, 1)
    assert {lead["first_name"] for lead in leads(alice)} == {"José"}
    assert "not valid UTF-8" in report(alice, item)[1][1]


def test_quoted_newlines_nul_bytes_and_cr_line_ends(alice: Actor, run_jobs: Any) -> None:
    content = b'email,company\r\na@example.com,"Acme\r\nHoldings"\r\nb@example.com,Be\x00ta\r\n'
    item = imported(alice, content, run_jobs)
    assert item["rows_imported"] == 2
    assert {lead["company"] for lead in leads(alice)} == {"Acme Holdings", "Beta"}
    item = imported(alice, b"email\rc@example.com\rd@example.com\r", run_jobs)
    assert item["rows_imported"] == 2


def test_a_huge_line_is_rejected_and_the_rest_imports(alice: Actor, run_jobs: Any) -> None:
    giant = b"x" * (10 * 1024 * 1024)
    big_field = b"y" * 200_000
    content = (
        b"email,company\na@example.com,ok\nb@example.com,"
        + giant
        + b"\nc@example.com,"
        + big_field
        + b"\nd@example.com,ok\n"
    )
    item = imported(alice, content, run_jobs)
    assert (item["rows_read"], item["rows_imported"], item["rows_rejected"]) == (4, 2, 2)
    reasons = [row[1] for row in report(alice, item)[1:]]
    assert reasons[0] == "The line is longer than 1 MB."
    assert "field larger than field limit" in reasons[1]
    assert {lead["email"] for lead in leads(alice)} == {"a@example.com", "d@example.com"}


def test_malformed_csv_rows_are_reported_not_crashed_on(alice: Actor, run_jobs: Any) -> None:
    content = b'email,company\nb@example.com,x,extra,cells\nc@example.com,fine\n"a@example.com,"unterminated\n'
    item = imported(alice, content, run_jobs)
    assert item["status"] == "completed"
    assert_accounted(item)
    assert item["rows_imported"] == 1
    rows = report(alice, item)[1:]
    assert rows[0][:2] == ["2", "The row has 4 cells but the header has 2 columns."]
    assert rows[1][0] == "4"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n\n\n", "empty"),
        (b"email,first_name\n", "no rows"),
        (b"first_name,company\nAnn,Acme\n", "email or a phone"),
        (b"email,Email\na@example.com,b@example.com\n", "more than once"),
        (",".join(f"c{i}" for i in range(10_000)).encode() + b"\n1\n", "columns"),
        (b"PK\x03\x04" + b"\x00" * 100, "Excel"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "binary"),
    ],
)
def test_files_that_cannot_be_imported_are_422_at_upload(alice: Actor, content: bytes, message: str) -> None:
    r = alice.upload(content)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert message in str(r.json())
    assert alice.get("/api/leads/imports").json()["items"] == []


def test_bad_form_fields_are_field_errors(alice: Actor) -> None:
    r = alice.upload(b"email\na@example.com\n", mapping="[1]", default_region="XX", delimiter="|")
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"mapping", "default_region", "delimiter"}
    r = alice.upload(b"email\na@example.com\n", mapping='{"Nope": "email"}')
    assert r.status_code == 422
    r = alice.post("/api/leads/imports", json={"file": "x"})
    assert r.status_code == 422


def test_a_malformed_multipart_body_is_a_400_that_quotes_none_of_its_bytes(alice: Actor) -> None:
    canary = "canary-3f9a-secret"
    body = f"--B\r\nContent-Disposition form-data; name=file; {canary}\r\n\r\nemail\r\n--B--\r\n".encode()
    r = alice.post("/api/leads/imports", content=body, headers={"content-type": "multipart/form-data; boundary=B"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"] == [{"field": "body", "message": "malformed multipart/form-data"}]
    assert canary not in r.text


def test_limits_are_enforced_while_streaming(alice: Actor, campaign_settings: CampaignSettings, run_jobs: Any) -> None:
    campaign_settings.import_max_bytes = 2048
    campaign_settings.import_max_rows = 10
    r = alice.upload(b"email\n" + b"a@example.com\n" * 200)
    assert r.status_code == 413
    r = alice.upload(b"email\n" + b"".join(f"r{i}@example.com\n".encode() for i in range(11)))
    assert r.status_code == 422
    assert "rows" in r.json()["detail"]
    r = alice.upload(b"email\n" + b"".join(f"r{i}@example.com\n".encode() for i in range(10)))
    assert r.status_code == 202
    run_jobs()
    # Neither the accepted upload nor the rejected ones leave a file on the receiving host.
    assert list((campaign_settings.data_dir / "uploads").iterdir()) == []


def stored_chunks(engine: Engine, import_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM lead_import_files WHERE import_id = :id"), {"id": import_id}
            ).scalar_one()
        )


def test_the_import_runs_on_a_host_that_shares_no_disk_with_the_one_that_received_it(
    alice: Actor,
    campaign_settings: CampaignSettings,
    run_jobs: Any,
    engine: Engine,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = 40_000
    content = ("email,first_name\n" + "".join(f"far{i}@example.com,Farfield{i}\n" for i in range(rows))).encode()
    assert len(content) > filestore.CHUNK_BYTES  # more than one stored chunk
    r = alice.upload(content)
    assert r.status_code == 202
    import_id = r.json()["id"]
    assert stored_chunks(engine, import_id) == -(-len(content) // filestore.CHUNK_BYTES)
    assert list((campaign_settings.data_dir / "uploads").iterdir()) == []
    # The worker's host has its own, empty data directory: the file reaches it through PostgreSQL.
    worker_disk = tmp_path_factory.mktemp("worker-host")
    monkeypatch.setenv("SDR_DATA_DIR", str(worker_disk))
    assert run_jobs() == 1
    done = alice.get(f"/api/leads/imports/{import_id}").json()
    assert (done["status"], done["rows_imported"]) == ("completed", rows)
    assert stored_chunks(engine, import_id) == 0
    assert list((worker_disk / "import-work").iterdir()) == []


def test_idempotency_key_replays_the_first_import(alice: Actor, bob: Actor, run_jobs: Any) -> None:
    content = b"email\na@example.com\nb@example.com\n"
    first = alice.upload(content, key="import-2026-11-23")
    assert first.status_code == 202
    again = alice.upload(content, key="import-2026-11-23")
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other_org = bob.upload(content, key="import-2026-11-23")
    assert other_org.status_code == 202
    assert other_org.json()["id"] != first.json()["id"]
    assert run_jobs() == 2
    assert len(leads(alice)) == 2
    assert alice.upload(content, key="bad key with spaces").status_code in (400, 422)


def test_running_the_job_twice_changes_nothing(alice: Actor, run_jobs: Any, engine: Engine) -> None:
    item = imported(alice, b"email\na@example.com\nb@example.com\n", run_jobs)
    from services.campaign.leads.jobs import run_import

    assert run_import(item["id"]) == "done"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM leads")).scalar_one() == 2
    assert alice.get(f"/api/leads/imports/{item['id']}").json()["rows_imported"] == 2


def test_suppressed_contacts_are_imported_as_suppressed(alice: Actor, run_jobs: Any) -> None:
    alice.suppress("+12125550100", channel="sms", reason="stop")
    alice.suppress("@blocked.com", channel="email")
    content = b"email,phone\na@blocked.com,\nb@example.com,+12125550100\nc@example.com,\n"
    item = imported(alice, content, run_jobs)
    assert (item["rows_imported"], item["rows_suppressed"]) == (3, 2)
    statuses = {lead["email"]: lead["status"] for lead in leads(alice)}
    assert statuses == {"a@blocked.com": "suppressed", "b@example.com": "suppressed", "c@example.com": "active"}


def test_erasure_then_reimport_skips_the_person_without_keeping_their_data(
    alice: Actor, run_jobs: Any, engine: Engine
) -> None:
    item = imported(alice, b"email,phone\ngone@example.com,+12125550100\nbad-address,\n", run_jobs)
    lead = leads(alice)[0]
    assert alice.delete(f"/api/leads/{lead['id']}").status_code == 204
    again = imported(
        alice, b"email,phone\nGONE@example.com,\nnew@example.com,212-555-0100\nok@example.com,\n", run_jobs
    )
    assert (again["rows_imported"], again["rows_rejected"]) == (1, 2)
    rows = report(alice, again)[1:]
    assert {r[1] for r in rows} == {"This contact asked to be erased (GDPR); the row was not imported."}
    assert all(cell == "" for r in rows for cell in r[2:])
    with engine.connect() as conn:
        dump = str(conn.execute(sa.text("SELECT * FROM leads")).all())
        dump += str(conn.execute(sa.text("SELECT * FROM lead_import_rejections")).all())
    assert "gone@example.com" not in dump.lower()
    assert report(alice, item)[1:][0][2] == "bad-address"


def test_report_cells_are_neutralised_on_export_and_stored_raw(alice: Actor, run_jobs: Any) -> None:
    content = (
        b'email,first_name,company\n=HYPERLINK("http://x"),+1+1,-2\n'
        b"a@example.com,@SUM(A1),\"=cmd|' /C calc'!A0\"\nbad,\t=1,ok\n"
    )
    item = imported(alice, content, run_jobs)
    rows = report(alice, item)
    assert rows[1][2:] == ['\'=HYPERLINK("http://x")', "'+1+1", "'-2"]
    assert rows[2][2:] == ["bad", "'\t=1", "ok"]
    lead = leads(alice)[0]
    assert (lead["first_name"], lead["company"]) == ("@SUM(A1)", "=cmd|' /C calc'!A0")


@pytest.mark.timeout(180)
def test_a_killed_import_resumes_without_duplicates_or_loss(
    alice: Actor, engine: Engine, redis_url: str, campaign_settings: CampaignSettings
) -> None:
    rows = 60_000
    content = "email,first_name\n" + "".join(f"p{i}@example.com,P{i}\n" for i in range(rows))
    r = alice.upload(content.encode())
    assert r.status_code == 202
    import_id = r.json()["id"]
    env = {**os.environ, "SDR_IMPORT_CHUNK_ROWS": "1000"}
    command = [sys.executable, "-c", "from services.worker.main import run_worker; run_worker(['default'], burst=True)"]
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        progress = 0
        while time.monotonic() < deadline and progress < 2000:
            progress = alice.get(f"/api/leads/imports/{import_id}").json()["rows_read"]
            time.sleep(0.05)
        assert 2000 <= progress < rows, "the import should be visibly in progress"
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    mid = alice.get(f"/api/leads/imports/{import_id}").json()
    assert mid["status"] == "running"
    from services.campaign.leads.jobs import run_import

    assert run_import(import_id) == "done"
    done = alice.get(f"/api/leads/imports/{import_id}").json()
    assert (done["rows_read"], done["rows_imported"], done["rows_duplicate"]) == (rows, rows, 0)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(DISTINCT email_normalized) FROM leads")).scalar_one() == rows


def test_a_lead_written_while_a_chunk_is_in_flight_is_not_duplicated(
    alice: Actor, engine: Engine, run_jobs: Any
) -> None:
    """A concurrent write of a row's email between the chunk's matching and its insert: the
    chunk's plain insert meets the unique index, and the chunk is inserted again without it."""
    content = b"email,first_name\n" + b"".join(b"r%d@example.com,R\n" % i for i in range(50))
    r = alice.upload(content)
    assert r.status_code == 202
    racer = engine.connect()
    racer.begin()
    racer.execute(
        sa.text(
            "INSERT INTO leads (id, org_id, email, email_normalized, first_name, custom_fields, status, created_at,"
            " updated_at) VALUES (gen_random_uuid(), :org, 'r7@example.com', 'r7@example.com', 'Racer', '{}',"
            " 'active', now(), now())"
        ),
        {"org": alice.org_id},
    )
    # Uncommitted: the import's matching cannot see it; its insert waits on it, then conflicts.
    timer = threading.Timer(1.0, racer.commit)
    timer.start()
    try:
        assert run_jobs() == 1
    finally:
        timer.join()
        racer.close()
    item = alice.get(f"/api/leads/imports/{r.json()['id']}").json()
    assert (item["status"], item["rows_imported"], item["rows_duplicate"]) == ("completed", 49, 1)
    assert_accounted(item)
    with engine.connect() as conn:
        names = dict(conn.execute(sa.text("SELECT email, first_name FROM leads")).all())
    assert len(names) == 50
    assert names["r7@example.com"] == "Racer"


def test_imported_leads_get_time_ordered_ids_in_file_order(alice: Actor, run_jobs: Any, engine: Engine) -> None:
    content = b"email\n" + b"".join(b"o%d@example.com\n" % i for i in range(30))
    item = imported(alice, content, run_jobs)
    assert item["rows_imported"] == 30
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, email FROM leads ORDER BY id")).all()
    assert [email for _, email in rows] == [f"o{i}@example.com" for i in range(30)]
    assert {lead_id.version for lead_id, _ in rows} == {7}


def test_the_optional_mx_check_rejects_domains_that_accept_no_mail(
    alice: Actor, run_jobs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone: Zone = {
        "mx-ok.com": [("MX", "10 mail.mx-ok.com.")],
        "a-only.com": [("A", "93.184.216.34")],
        "private-a.com": [("A", "10.0.0.7")],
        "null-mx.com": [("MX", "0 .")],
        "gone.com": None,
    }
    content = (
        b"email\nann@mx-ok.com\nbob@mx-ok.com\ncat@a-only.com\ndan@private-a.com\neve@null-mx.com\n"
        b"fay@gone.com\ngus@silent.com\n"
    )
    with dns_server(zone) as server:
        monkeypatch.setenv("SDR_DNS_NAMESERVERS", f'["127.0.0.1:{server.port}"]')
        monkeypatch.setenv("SDR_DNS_TIMEOUT", "0.5")
        item = imported(alice, content, run_jobs, check_mx="true")
        unchecked = imported(alice, content.replace(b"@", b"1@"), run_jobs)
    # A domain whose lookup times out (silent.com) is imported: unknown is not undeliverable.
    assert (item["rows_imported"], item["rows_rejected"]) == (4, 3)
    reasons = {row[0]: row[1] for row in report(alice, item)[1:]}
    assert set(reasons) == {"5", "6", "7"}  # private-a, null-mx, gone (file rows)
    assert "does not accept email" in reasons["6"]
    assert "does not exist" in reasons["7"]
    assert server.queries["mx-ok.com"] == 1  # one lookup per domain, not per row
    assert unchecked["rows_imported"] == 7  # off by default: syntax only, no lookups
    assert alice.upload(content, check_mx="perhaps").json()["errors"] == [
        {"field": "check_mx", "message": "true or false"}
    ]
