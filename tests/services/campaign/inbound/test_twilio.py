"""Twilio status callbacks: signatures by the real RequestValidator, the public URL, dedupe, order, 21610."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import pytest
from litestar.testing import TestClient
from redis import Redis
from sqlalchemy import Engine
from twilio.request_validator import RequestValidator

from libs.crypto import SecretBox
from libs.queue import QueueName, get_queue
from tests.services.campaign.inbound.factories import ACCOUNT_SID, AUTH_TOKEN, add_message, create_world, one, rows

PUBLIC = "https://sdr.example.com"
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "sdr.example.com"}
STATUS_PATH = "/hooks/twilio/messages/status"
CALL_PATH = "/hooks/twilio/calls/status"


def signed_post(
    client: TestClient,  # type: ignore[type-arg]
    path: str,
    params: dict[str, str],
    *,
    url: str | None = None,
    token: str = AUTH_TOKEN,
    headers: dict[str, str] | None = None,
    body_params: dict[str, str] | None = None,
) -> Any:
    """POST ``params`` signed (over ``url``, default the forwarded public URL) the way Twilio signs."""
    signature = RequestValidator(token).compute_signature(url or PUBLIC + path, params)
    all_headers = {**FORWARDED, "X-Twilio-Signature": signature, **(headers or {})}
    return client.post(path, data=body_params if body_params is not None else params, headers=all_headers)


def status_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {"AccountSid": ACCOUNT_SID, "MessageSid": sid, "SmsSid": sid, "MessageStatus": status, **extra}


def queued_jobs(redis: Redis) -> int:
    return get_queue(QueueName.INBOUND, redis).count


@pytest.fixture
def world(engine: Engine, box: SecretBox) -> Any:
    return create_world(engine, box)


def test_a_valid_signature_is_accepted_and_the_work_is_queued(
    client: TestClient,
    engine: Engine,
    world: Any,
    redis: Redis,  # type: ignore[type-arg]
) -> None:
    add_message(engine, world, step=1, provider_message_id="SM1")
    r = signed_post(client, STATUS_PATH, status_params("SM1", "delivered"))
    assert r.status_code == 200
    assert r.text.endswith("<Response/>")
    assert one(engine, "SELECT count(*) FROM inbound_events") == 1
    assert queued_jobs(redis) == 1
    # The request only stored the event: the message moves when the job runs.
    assert one(engine, "SELECT status FROM messages") == "sent"


@pytest.mark.parametrize(
    "case",
    ["tampered", "extra", "missing", "no_header", "other_token", "http_scheme", "wrong_host", "wrong_path"],
)
def test_bad_signatures_get_403_with_no_side_effect(
    case: str,
    client: TestClient,
    engine: Engine,
    world: Any,
    redis: Redis,  # type: ignore[type-arg]
) -> None:
    add_message(engine, world, step=1, provider_message_id="SM1")
    params = status_params("SM1", "delivered")
    kwargs: dict[str, Any] = {}
    if case == "tampered":
        kwargs["body_params"] = {**params, "MessageStatus": "failed"}
    elif case == "extra":
        kwargs["body_params"] = {**params, "ErrorCode": "21610"}
    elif case == "missing":
        kwargs["body_params"] = {k: v for k, v in params.items() if k != "SmsSid"}
    elif case == "other_token":
        kwargs["token"] = "another-accounts-token-000000000000"
    elif case == "http_scheme":
        kwargs["url"] = "http://sdr.example.com" + STATUS_PATH
    elif case == "wrong_host":
        kwargs["url"] = "https://evil.example.com" + STATUS_PATH
    elif case == "wrong_path":
        kwargs["url"] = PUBLIC + CALL_PATH
    if case == "no_header":
        r = client.post(STATUS_PATH, data=params, headers=FORWARDED)
    else:
        r = signed_post(client, STATUS_PATH, params, **kwargs)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "Forbidden"
    assert one(engine, "SELECT count(*) FROM inbound_events") == 0
    assert queued_jobs(redis) == 0


def test_a_client_cannot_choose_the_url_by_sending_a_host_header_when_the_public_url_is_set(
    make_client: Callable[..., TestClient],
    engine: Engine,
    world: Any,  # type: ignore[type-arg]
) -> None:
    client = make_client(public_base_url=PUBLIC)
    add_message(engine, world, step=1, provider_message_id="SM1")
    params = status_params("SM1", "delivered")
    forged_headers = {"X-Forwarded-Host": "attacker.example", "X-Forwarded-Proto": "http"}
    # Signed over the attacker's idea of the URL: refused, since the setting wins.
    bad = signed_post(client, STATUS_PATH, params, url="http://attacker.example" + STATUS_PATH, headers=forged_headers)
    assert bad.status_code == 403
    good = signed_post(client, STATUS_PATH, params, headers=forged_headers)
    assert good.status_code == 200


@pytest.mark.parametrize(
    ("public", "path"),
    [
        ("https://sdr.example.com:443", STATUS_PATH + "?message_id=abc&org=x%2Fy"),
        ("https://sdr.example.com", STATUS_PATH + "?note=caf%C3%A9%20au%20lait"),
    ],
)
def test_query_strings_explicit_ports_and_percent_encoding_are_kept(
    public: str,
    path: str,
    make_client: Callable[..., TestClient],
    engine: Engine,
    world: Any,  # type: ignore[type-arg]
) -> None:
    client = make_client(public_base_url=public)
    add_message(engine, world, step=1, provider_message_id="SM1")
    params = status_params("SM1", "sent")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(public + path, params)
    r = client.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert r.status_code == 200
    decoded = unquote(path)  # a validator that decoded the query first would sign something else
    signature = RequestValidator(AUTH_TOKEN).compute_signature(public + decoded, params)
    assert client.post(path, data=params, headers={"X-Twilio-Signature": signature}).status_code == 403


def test_a_replayed_callback_is_stored_once(
    client: TestClient,
    engine: Engine,
    world: Any,
    redis: Redis,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    add_message(engine, world, step=1, provider_message_id="SM1")
    params = status_params("SM1", "delivered")
    token = {"I-Twilio-Idempotency-Token": "idem-1"}
    assert signed_post(client, STATUS_PATH, params, headers=token).status_code == 200
    assert signed_post(client, STATUS_PATH, params, headers=token).status_code == 200
    # Same SID and status under another idempotency token: still the same event.
    assert signed_post(client, STATUS_PATH, params, headers={"I-Twilio-Idempotency-Token": "idem-2"}).status_code == 200
    assert one(engine, "SELECT count(*) FROM inbound_events") == 1
    assert queued_jobs(redis) == 1
    run_inbound()
    assert one(engine, "SELECT count(*) FROM message_events WHERE type = 'delivered'") == 1


def test_status_callbacks_never_move_a_message_backwards(
    client: TestClient,
    engine: Engine,
    world: Any,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    add_message(engine, world, step=1, provider_message_id="SM1")
    for status in ("delivered", "sent", "sending", "undelivered"):
        assert signed_post(client, STATUS_PATH, status_params("SM1", status)).status_code == 200
    run_inbound()
    assert one(engine, "SELECT status FROM messages") == "delivered"
    outcomes = {r.dedupe_key: r.outcome for r in rows(engine, "SELECT dedupe_key, outcome FROM inbound_events")}
    assert outcomes["SM1:delivered"] == "delivered"
    assert outcomes["SM1:undelivered"] == "kept_delivered"
    assert one(engine, "SELECT count(*) FROM message_events") == 1


def test_a_callback_resolves_an_unknown_send_through_the_message_id_in_the_callback_url(
    make_client: Callable[..., TestClient],
    engine: Engine,
    world: Any,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    client = make_client(public_base_url=PUBLIC)
    message_id = add_message(engine, world, step=1, status="unknown")
    path = f"{STATUS_PATH}?message_id={message_id}"
    params = status_params("SM9", "sent")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, params)
    assert client.post(path, data=params, headers={"X-Twilio-Signature": signature}).status_code == 200
    run_inbound()
    assert rows(engine, "SELECT status, provider_message_id FROM messages")[0] == ("sent", "SM9")


def test_a_callback_for_an_unknown_or_foreign_sid_changes_nothing(
    client: TestClient,
    engine: Engine,
    box: SecretBox,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    mine = create_world(engine, box)
    other = create_world(engine, box, account_sid="AC" + "2" * 32, auth_token="other-token-0000000000000000000")
    add_message(engine, other, step=1, provider_message_id="SMother")
    assert signed_post(client, STATUS_PATH, status_params("SMother", "delivered")).status_code == 200
    run_inbound()
    assert one(engine, "SELECT status FROM messages") == "sent"
    assert one(engine, "SELECT outcome FROM inbound_events WHERE org_id = :o", o=mine.org_id) == "unknown_message"


def test_error_21610_suppresses_the_number_for_sms_and_voicemail(
    client: TestClient,
    engine: Engine,
    world: Any,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    add_message(engine, world, step=1, provider_message_id="SM1")
    params = status_params("SM1", "failed", ErrorCode="21610")
    assert signed_post(client, STATUS_PATH, params).status_code == 200
    run_inbound()
    found = rows(engine, "SELECT channel, kind, value, reason FROM suppressions ORDER BY channel")
    assert found == [("sms", "phone", "+12015550100", "stop"), ("voicemail", "phone", "+12015550100", "stop")]
    assert rows(engine, "SELECT status, error_code FROM messages")[0] == ("failed", "twilio_21610")
    event = rows(engine, "SELECT received_at, effective_at FROM inbound_events")[0]
    assert event.effective_at is not None
    assert event.effective_at >= event.received_at


@pytest.mark.parametrize(
    ("call_status", "answered_by", "expected", "error_code"),
    [
        ("completed", "machine_end_beep", "delivered", None),
        ("completed", "human", "delivered", None),
        ("completed", "fax", "failed", "call_fax"),
        ("no-answer", "", "failed", "call_no_answer"),
        ("ringing", "", "sent", None),
    ],
)
def test_call_status_with_answered_by(
    call_status: str,
    answered_by: str,
    expected: str,
    error_code: str | None,
    client: TestClient,  # type: ignore[type-arg]
    engine: Engine,
    world: Any,
    run_inbound: Callable[[], int],
) -> None:
    add_message(engine, world, step=1, channel="voicemail", provider_message_id="CA1")
    params = {"AccountSid": ACCOUNT_SID, "CallSid": "CA1", "CallStatus": call_status}
    if answered_by:
        params["AnsweredBy"] = answered_by
    assert signed_post(client, CALL_PATH, params).status_code == 200
    run_inbound()
    assert rows(engine, "SELECT status, error_code FROM messages")[0] == (expected, error_code)
    if expected == "delivered":
        data = one(engine, "SELECT data FROM message_events WHERE type = 'delivered'")
        assert data["answered_by"] == answered_by
