"""A customer's first campaign, end to end: ``sdr dev`` as real processes, driven only through the gateway.

Sign up, switch to an API key, describe the brand, add and verify an SMTP sender (a loopback
server the test runs), add leads by JSON and by CSV upload, write an email + SMS sequence,
enroll, launch, and wait for the worker fleet to send every step. Then check that the mail
server, the ledger, the analytics and the lead timeline tell the same story, unsubscribe one
lead through the one-click link, and look at the queues as an operator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from redis import Redis

from tests.conftest import REDIS_TEST_DB, ROOT
from tests.support.dev import DevSystem, readyz, run_sdr_dev, wait_for
from tests.support.servers import create_database, drop_database
from tests.support.smtp import ReceivedMessage, SmtpServer

pytestmark = pytest.mark.e2e

SENDER_LOGIN = "outreach@acme-journey.example"
SENDER_PASSWORD = "smtp-password-journey-1"
OPT_OUT_EMAIL = "Prefer not to hear from us? Unsubscribe"
OPT_OUT_SMS = "Reply STOP to opt out."
OPERATOR_EMAIL = "ops@tidewater-journey.example"
OPERATOR_PASSWORD = "operator horse battery staple"
SEND_TIMEOUT = 60.0
BODY_TEMPLATE = "Hi {{ lead.first_name }},\n\nHow is everything at {{ lead.company }}?\n\n{{ brand.name }}"


@dataclass
class Running:
    """One ``sdr dev`` on the test's PostgreSQL and Redis, and the loopback SMTP server senders point at."""

    system: DevSystem
    smtp: SmtpServer


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, pg_server_url: str, template_db: str, redis_server_url: str
) -> Iterator[Running]:
    """``sdr dev`` as real processes (two workers, the ticker), shared by this module's tests."""
    # A fresh database and a flushed Redis database, as the database_url / redis_url fixtures give
    # one test, but for the module: starting the whole system once is what costs.
    database_url = create_database(pg_server_url, template=template_db)
    redis_url = redis_server_url.rsplit("/", 1)[0] + f"/{REDIS_TEST_DB}"
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    try:
        with (
            SmtpServer(credentials={SENDER_LOGIN: SENDER_PASSWORD}) as smtp,
            run_sdr_dev(
                tmp_path_factory.mktemp("journey"),
                database_url=database_url,
                redis_url=redis_url,
                extra_env={"SDR_DEV_WORKERS": "2", "SDR_LOG_LEVEL": "WARNING"},
            ) as system,
        ):
            wait_for(lambda: readyz(system)[0] == 200, "/readyz to be green", system, timeout=180)
            yield Running(system, smtp)
    finally:
        redis.flushdb()
        redis.close()
        drop_database(pg_server_url, database_url)


def readme_first_session() -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON bodies of the README's first session: the sign-up, then the brand."""
    bodies = re.findall(r"-d '(\{.*?\})'", (ROOT / "README.md").read_text())
    signup, brand = (json.loads(body) for body in bodies[:2])
    return signup, brand


def ok(response: httpx.Response, *expected: int) -> Any:
    """Return the JSON body of a response whose status is one of ``expected`` (default 2xx)."""
    good = response.status_code in expected if expected else response.is_success
    assert good, f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text}"
    return response.json() if response.content else None


def local_noon_zone() -> str:
    """An IANA zone where it is early afternoon right now (SMS may only go out 08:00-21:00 local)."""
    offset = 13 - datetime.now(UTC).hour  # -10 .. +13: every value is an Etc/GMT zone
    # Etc/GMT signs are inverted (POSIX): UTC+3 is "Etc/GMT-3".
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def poll(check: Callable[[], Any], what: str, system: DevSystem, timeout: float) -> Any:
    """Call ``check`` until it returns something truthy (and return it), or fail after ``timeout`` seconds."""
    found: list[Any] = []

    def done() -> bool:
        value = check()
        if value:
            found.append(value)
        return bool(value)

    wait_for(done, what, system, timeout)
    return found[0]


def items(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated list."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = ok(client.get(path, params=query))
        out += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def unsubscribe_url(message: EmailMessage, gateway: str) -> str:
    """The https/http URL in the message's List-Unsubscribe header (the one on our gateway)."""
    header = str(message["List-Unsubscribe"])
    urls = [u for u in re.findall(r"<([^>]+)>", header) if u.startswith(gateway)]
    assert len(urls) == 1, header
    return urls[0]


def recorded_sms(system: DevSystem) -> list[dict[str, Any]]:
    """What the worker's local recorder (no Twilio credentials) wrote for SMS so far."""
    path = system.data_dir / "outbox" / "sms.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, message
    return str(part.get_content())  # type: ignore[attr-defined]


@pytest.mark.timeout(300)
def test_a_customer_signs_up_launches_a_campaign_and_every_lead_gets_exactly_one_email(running: Running) -> None:
    system, smtp = running.system, running.smtp
    gateway = system.gateway
    with httpx.Client(base_url=gateway, timeout=30) as anonymous:
        # --- sign up (the README's first session, verbatim): an organization and its owner ------
        signup_body, brand_body = readme_first_session()
        signup = anonymous.post("/api/auth/signup", json=signup_body, headers={"X-Request-ID": "journey-signup"})
        session = ok(signup, 201)
        assert signup.headers["x-request-id"] == "journey-signup"
        assert session["role"] == "owner"
        assert session["user"]["email"] == signup_body["email"]
        owner = {"Authorization": f"Bearer {session['access_token']}"}

        # --- an API key; everything after this uses it (the gateway exchanges it) -------------
        key_body = {"name": "journey", "scopes": ["*"], "role": "admin"}
        key = ok(anonymous.post("/api/auth/api-keys", headers=owner, json=key_body), 201)
        assert key["key"].startswith("twk_")
        unknown_key = anonymous.get("/api/brands", headers={"Authorization": "Bearer twk_not-a-key-of-anyone"})
        assert unknown_key.status_code == 401, unknown_key.text
        assert unknown_key.headers["content-type"].startswith("application/problem+json")
    with httpx.Client(base_url=gateway, timeout=30, headers={"Authorization": f"Bearer {key['key']}"}) as api:
        me = ok(api.get("/api/auth/me"))
        assert me["api_key_id"] == key["id"]
        assert me["organization"]["id"] == session["organization"]["id"]
        walk_with_api_key(system, smtp, api, brand_body)


def walk_with_api_key(system: DevSystem, smtp: SmtpServer, api: httpx.Client, brand_body: dict[str, Any]) -> None:
    gateway = system.gateway

    # --- the brand (the README's body), then its opt-out wording with If-Match ----------------
    created_brand = api.post("/api/brands", json=brand_body)
    brand = ok(created_brand, 201)
    brand_id = brand["id"]
    postal_address = brand_body["postal_address"]
    assert brand["postal_address"] == postal_address
    readiness = ok(api.get(f"/api/brands/{brand_id}/readiness"))
    # The README's brand already carries its email opt-out wording: only the sender is missing.
    assert brand["opt_out_email"] == brand_body["opt_out_email"]
    assert [gap["code"] for gap in readiness["channels"]["email"]["missing"]] == ["email_sender"]
    assert "opt_out_sms" in {gap["code"] for gap in readiness["channels"]["sms"]["missing"]}
    wording = {"opt_out_email": OPT_OUT_EMAIL, "opt_out_sms": OPT_OUT_SMS}
    stale = api.patch(f"/api/brands/{brand_id}", json=wording, headers={"If-Match": '"v0"'})
    assert stale.status_code == 412, stale.text
    brand = ok(api.patch(f"/api/brands/{brand_id}", json=wording, headers={"If-Match": created_brand.headers["etag"]}))
    assert brand["opt_out_email"] == OPT_OUT_EMAIL
    readiness = ok(api.get(f"/api/brands/{brand_id}/readiness"))
    assert [gap["code"] for gap in readiness["channels"]["email"]["missing"]] == ["email_sender"]

    # --- an email sender on the loopback SMTP server, verified live ---------------------------
    sender = ok(
        api.post(
            f"/api/brands/{brand_id}/senders",
            json={
                "kind": "email",
                "from_name": "Ada at Acme",
                "from_address": SENDER_LOGIN,
                "smtp_host": smtp.host,
                "smtp_port": smtp.port,
                "smtp_security": "none",
                "smtp_username": SENDER_LOGIN,
                "smtp_password": SENDER_PASSWORD,
            },
        ),
        201,
    )
    assert sender["smtp_password"] == {"set": True, "last4": SENDER_PASSWORD[-4:]}
    assert SENDER_PASSWORD not in json.dumps(sender)
    verified = ok(api.post(f"/api/brands/{brand_id}/senders/{sender['id']}/verify"), 200)
    assert verified["verified_at"] is not None
    assert verified["last_verification"]["verified"] is True
    last = smtp.auth_attempts[-1]
    assert (last.login, last.success) == (SENDER_LOGIN, True)
    ok(
        api.post(f"/api/brands/{brand_id}/senders", json={"kind": "sms", "phone_number": "+12065550100"}),
        201,
    )

    # --- readiness: email may launch; SMS too (no Twilio credentials: the local recorder) ------
    readiness = ok(api.get(f"/api/brands/{brand_id}/readiness"))
    assert readiness["channels"]["email"]["ready"] is True, readiness
    assert readiness["channels"]["sms"]["ready"] is True, readiness

    # --- leads: two as JSON, two more from a CSV upload ---------------------------------------
    zone = local_noon_zone()
    people = [
        ("Grace", "Hopper", "grace@hopper-journey.example", "+12065550101"),
        ("Alan", "Turing", "alan@turing-journey.example", "+12065550102"),
        ("Katherine", "Johnson", "katherine@johnson-journey.example", "+12065550103"),
        ("Edsger", "Dijkstra", "edsger@dijkstra-journey.example", "+12065550104"),
    ]
    created = [
        ok(
            api.post(
                "/api/leads",
                json={
                    "first_name": first,
                    "last_name": last,
                    "email": email,
                    "phone": phone,
                    "company": f"{last} Labs",
                    "timezone": zone,
                    "consent_sms": True,
                    "consent_source": "journey signup form",
                },
            ),
            201,
        )
        for first, last, email, phone in people[:2]
    ]
    csv_rows = ["first_name,last_name,email,phone,company,timezone,sms_consent"]
    csv_rows += [f"{first},{last},{email},{phone},{last} Labs,{zone},yes" for first, last, email, phone in people[2:]]
    upload = ok(
        api.post(
            "/api/leads/imports",
            files={"file": ("leads.csv", ("\r\n".join(csv_rows) + "\r\n").encode(), "text/csv")},
            data={"consent_source": "journey trade show"},
            headers={"Idempotency-Key": "journey-import-1"},
        ),
        202,
    )
    finished = poll(
        lambda: (lambda imp: imp if imp["status"] not in ("pending", "queued", "running") else None)(
            ok(api.get(f"/api/leads/imports/{upload['id']}"))
        ),
        "the CSV import to finish",
        system,
        timeout=SEND_TIMEOUT,
    )
    assert finished["status"] == "completed", finished
    assert (finished["rows_read"], finished["rows_imported"], finished["rows_rejected"]) == (2, 2, 0), finished
    leads = items(api, "/api/leads")
    by_email = {lead["email"]: lead for lead in leads}
    assert set(by_email) == {email for *_, email, _ in people}
    assert all(lead["consent_sms_at"] for lead in leads), leads
    assert created[0]["id"] == by_email[people[0][2]]["id"]

    # --- the campaign: an email step and an SMS step, no delays, open all week ----------------
    campaign = ok(
        api.post(
            "/api/campaigns",
            json={
                "brand_id": brand_id,
                "name": "Journey",
                "timezone": "UTC",
                "send_window": {"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "24:00"},
            },
        ),
        201,
    )
    campaign_id = campaign["id"]
    email_step = ok(
        api.post(
            f"/api/campaigns/{campaign_id}/steps",
            json={
                "channel": "email",
                "delay": 0,
                "delay_unit": "minutes",
                "subject_template": "{{ first_name }}, a note from {{ brand.name }}",
                "body_template": BODY_TEMPLATE,
            },
        ),
        201,
    )
    sms_step = ok(
        api.post(
            f"/api/campaigns/{campaign_id}/steps",
            json={
                "channel": "sms",
                "delay": 0,
                "delay_unit": "minutes",
                "sms_template": "Hi {{ first_name }}, did my email reach you? - {{ brand.name }}",
            },
        ),
        201,
    )
    enrolled = ok(api.post(f"/api/campaigns/{campaign_id}/enrollments", json={"filter": {}}), 200)
    assert enrolled["enrolled"] == 4, enrolled
    launched = ok(api.post(f"/api/campaigns/{campaign_id}/launch"), 200)
    assert launched["status"] == "active", launched

    # --- the worker fleet sends every step: one email per lead on the loopback server ---------
    received = smtp.wait_for_messages(4, timeout=SEND_TIMEOUT)

    def every_message_sent() -> list[dict[str, Any]] | None:
        messages = items(api, "/api/messages", campaign_id=campaign_id)
        done = len(messages) == 8 and all(m["status"] == "sent" for m in messages)
        return messages if done else None

    messages = poll(every_message_sent, "all 8 messages to be sent", system, timeout=SEND_TIMEOUT)
    received = smtp.messages
    assert len(received) == 4, [m.rcpt_tos for m in received]
    mail: dict[str, ReceivedMessage] = {}
    for message in received:
        [rcpt] = message.rcpt_tos
        assert rcpt not in mail, f"{rcpt} got two emails"
        mail[rcpt] = message
    assert set(mail) == set(by_email)
    for first, _, email, _ in people:
        message = mail[email]
        assert message.login == SENDER_LOGIN
        assert message.mail_from == SENDER_LOGIN
        parsed = message.parsed()
        assert parsed["Subject"] == f"{first}, a note from Acme"
        assert parsed["To"].addresses[0].addr_spec == email
        body = text_of(parsed)
        assert f"Hi {first}," in body
        assert "{{" not in body
        assert postal_address in body
        assert OPT_OUT_EMAIL in body
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert unsubscribe_url(parsed, gateway) in body

    # --- the ledger, the analytics and the timeline agree with the mail server ----------------
    by_channel = {"email": [m for m in messages if m["channel"] == "email"], "sms": []}
    by_channel["sms"] = [m for m in messages if m["channel"] == "sms"]
    assert {m["lead_id"] for m in by_channel["email"]} == {lead["id"] for lead in leads}
    assert {m["lead_id"] for m in by_channel["sms"]} == {lead["id"] for lead in leads}
    assert {m["step_id"] for m in by_channel["email"]} == {email_step["id"]}
    assert {m["step_id"] for m in by_channel["sms"]} == {sms_step["id"]}
    email_of = {lead["id"]: lead["email"] for lead in leads}
    for m in by_channel["email"]:
        parsed = mail[email_of[m["lead_id"]]].parsed()
        assert m["subject"] == parsed["Subject"]
        assert m["provider_message_id"], m  # what the SMTP server answered to the final "."
        assert str(parsed["Message-ID"]).startswith(f"<{m['id']}@"), parsed["Message-ID"]
    for m in by_channel["email"] + by_channel["sms"]:
        detail = ok(api.get(f"/api/messages/{m['id']}"))
        assert [event["type"] for event in detail["events"]] == ["sent"], detail
        assert detail["personalization"]["source"] == "local", detail  # no OpenAI key: the template writer
    recorded = recorded_sms(system)
    for m in by_channel["sms"]:
        first, _, _, phone = next(p for p in people if p[2] == email_of[m["lead_id"]])
        assert m["body"].startswith(f"Hi {first}, did my email reach you? - Acme"), m
        [line] = [line for line in recorded if line["message_id"] == m["id"]]  # recorded once, not sent anywhere
        assert (line["to"], line["from"], line["body"]) == (phone, "+12065550100", m["body"])

    analytics = ok(api.get(f"/api/campaigns/{campaign_id}/analytics"))
    assert analytics["totals"]["enrolled"] == 4, analytics
    assert analytics["totals"]["sent"] == 8, analytics
    assert analytics["totals"]["failed"] == 0, analytics
    assert {c["channel"]: c["sent"] for c in analytics["by_channel"]} == {"email": 4, "sms": 4}, analytics
    assert {s["step_id"]: s["sent"] for s in analytics["by_step"]} == {email_step["id"]: 4, sms_step["id"]: 4}

    grace = by_email[people[0][2]]
    timeline = ok(api.get(f"/api/leads/{grace['id']}/timeline"))
    assert timeline["lead_id"] == grace["id"]
    [enrollment] = timeline["enrollments"]
    assert enrollment["campaign_id"] == campaign_id
    assert enrollment["status"] == "completed", enrollment
    assert sorted(m["id"] for m in timeline["messages"]) == sorted(
        m["id"] for m in messages if m["lead_id"] == grace["id"]
    )
    assert all(m["status"] == "sent" for m in timeline["messages"])
    sent_events = [e for e in timeline["events"] if e["type"] == "sent"]
    assert sorted(e["message_id"] for e in sent_events) == sorted(m["id"] for m in timeline["messages"])

    # --- one lead unsubscribes with the RFC 8058 one-click POST through the gateway ----------
    alan = people[1][2]
    link = unsubscribe_url(mail[alan].parsed(), gateway)
    assert link.startswith(f"{gateway}/u/")
    with httpx.Client(timeout=30) as browser:  # no credentials: the link alone is enough
        page = browser.get(link)
        assert page.status_code == 200, page.text
        assert "Unsubscribe" in page.text
        done = browser.post(
            link,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert done.status_code == 200, done.text
    suppressions = items(api, "/api/suppressions")
    assert [(s["value"], s["reason"]) for s in suppressions] == [(alan, "unsubscribe")], suppressions
    alan_id = by_email[alan]["id"]
    unsubscribed = poll(
        lambda: [e for e in ok(api.get(f"/api/leads/{alan_id}/timeline"))["events"] if e["type"] == "unsubscribed"],
        "the unsubscribe on Alan's timeline",
        system,
        timeout=SEND_TIMEOUT,
    )
    assert len(unsubscribed) == 1
    analytics = ok(api.get(f"/api/campaigns/{campaign_id}/analytics"))
    assert analytics["totals"]["unsubscribed"] == 1, analytics

    # --- Grace opens her email: the pixel goes through the gateway, the analytics count it ------
    grace_html = mail[grace["email"]].parsed().get_body(preferencelist=("html",))
    assert grace_html is not None
    [pixel] = re.findall(r'<img src="([^"]+/o/[^"]+)"', str(grace_html.get_content()))  # type: ignore[attr-defined]
    assert pixel.startswith(f"{gateway}/o/")
    opened = httpx.get(pixel, timeout=30)
    assert (opened.status_code, opened.headers["content-type"]) == (200, "image/gif"), opened.text
    poll(
        lambda: ok(api.get(f"/api/campaigns/{campaign_id}/analytics"))["totals"]["opened"] == 1,
        "the open in the analytics",
        system,
        timeout=SEND_TIMEOUT,
    )

    # --- operators see the queues; a customer's token does not --------------------------------
    customer = api.get("/api/ops/queues")
    assert customer.status_code == 403, customer.text
    assert customer.headers["content-type"].startswith("application/problem+json")
    operator_sees_the_queues(system)


def operator_sees_the_queues(system: DevSystem) -> None:
    printed = system.sdr("create-operator", OPERATOR_EMAIL).stdout
    match = re.search(r"invite token[^:]*: (\S+)", printed)
    assert match, printed
    with httpx.Client(base_url=system.gateway, timeout=30) as client:
        ok(client.post("/api/auth/invites/accept", json={"token": match.group(1), "password": OPERATOR_PASSWORD}))
        login = ok(client.post("/api/auth/login", json={"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD}), 200)
        queues = ok(client.get("/api/ops/queues", headers={"Authorization": f"Bearer {login['access_token']}"}), 200)
    by_name = {queue["name"]: queue for queue in queues["queues"]}
    assert {"email", "sms", "inbound"} <= set(by_name), queues
    assert by_name["email"]["finished_15m"] >= 1, queues
    assert by_name["sms"]["finished_15m"] >= 1, queues
    assert all(queue["failed"] == 0 for queue in queues["queues"]), queues
    assert len(queues["workers"]) == 2, queues  # SDR_DEV_WORKERS
    assert queues["unknown_count"] == 0, queues


@pytest.mark.timeout(120)
def test_a_text_carries_the_brands_sms_opt_out_wording(running: Running) -> None:
    system = running.system
    with httpx.Client(base_url=system.gateway, timeout=30) as anonymous:
        session = ok(
            anonymous.post(
                "/api/auth/signup",
                json={
                    "organization_name": "Texters",
                    "email": "owner@texters-journey.example",
                    "password": "texters horse battery staple",
                },
            ),
            201,
        )
    with httpx.Client(
        base_url=system.gateway, timeout=30, headers={"Authorization": f"Bearer {session['access_token']}"}
    ) as api:
        brand = ok(api.post("/api/brands", json={"name": "Texters", "opt_out_sms": OPT_OUT_SMS}), 201)
        ok(api.post(f"/api/brands/{brand['id']}/senders", json={"kind": "sms", "phone_number": "+12065550200"}), 201)
        assert ok(api.get(f"/api/brands/{brand['id']}/readiness"))["channels"]["sms"]["ready"] is True
        lead = ok(
            api.post(
                "/api/leads",
                json={
                    "first_name": "Barbara",
                    "phone": "+12065550201",
                    "timezone": local_noon_zone(),
                    "consent_sms": True,
                    "consent_source": "web form",
                },
            ),
            201,
        )
        campaign = ok(
            api.post(
                "/api/campaigns",
                json={
                    "brand_id": brand["id"],
                    "name": "Texts",
                    "send_window": {"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "24:00"},
                },
            ),
            201,
        )
        step = {"channel": "sms", "delay": 0, "delay_unit": "minutes", "sms_template": "Hi {{ first_name }}!"}
        ok(api.post(f"/api/campaigns/{campaign['id']}/steps", json=step), 201)
        assert (
            ok(api.post(f"/api/campaigns/{campaign['id']}/enrollments", json={"lead_ids": [lead["id"]]}))["enrolled"]
            == 1
        )
        ok(api.post(f"/api/campaigns/{campaign['id']}/launch"), 200)
        [message] = poll(
            lambda: [m for m in items(api, "/api/messages", campaign_id=campaign["id"]) if m["status"] == "sent"],
            "the text to be sent",
            system,
            timeout=SEND_TIMEOUT,
        )
    [line] = [line for line in recorded_sms(system) if line["message_id"] == message["id"]]
    assert line["body"].startswith("Hi Barbara!"), line
    assert OPT_OUT_SMS in line["body"], line
