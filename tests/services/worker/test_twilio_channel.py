"""SMS and voicemail adapters driven through the real twilio client against the loopback server."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET

import pytest

from services.worker.channels.outcome import Outcome
from services.worker.channels.twilio import (
    OutgoingSms,
    OutgoingVoicemail,
    TwilioAccount,
    make_client,
    send_sms,
    send_voicemail,
)
from tests.support.providers import ProviderServer, hang, invalid_json, twilio_error

ACCOUNT = TwilioAccount("AC" + "1" * 32, "token-secret")
SMS = OutgoingSms(
    message_id="m1",
    to="+14155550100",
    body="Hi Ada, quick question. Reply STOP to opt out.",
    status_callback="https://example.test/hooks/twilio/sms/status?message_id=m1",
    from_number="+14155550199",
)


def client(providers: ProviderServer, timeout: float = 2.0):  # type: ignore[no-untyped-def]
    return make_client(ACCOUNT, timeout=timeout, base_url=providers.url)


def test_sms_accepted_returns_the_sid_and_sends_the_callback(providers: ProviderServer) -> None:
    result = send_sms(client(providers), SMS)
    assert result.outcome is Outcome.SENT
    assert result.provider_id is not None
    assert result.provider_id.startswith("SM")
    [request] = providers.received("messages")
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT.account_sid}/Messages.json"
    assert request.basic_auth == (ACCOUNT.account_sid, ACCOUNT.auth_token)
    assert request.form == {
        "To": SMS.to,
        "From": SMS.from_number,
        "Body": SMS.body,
        "StatusCallback": SMS.status_callback,
    }


@pytest.mark.parametrize(
    ("behaviour", "outcome", "code"),
    [
        (twilio_error(429, 20429, "Too Many Requests"), Outcome.RETRY, "twilio_20429"),
        (twilio_error(400, 21211, "Invalid 'To' Phone Number"), Outcome.PERMANENT, "twilio_21211"),
        (twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"), Outcome.PERMANENT, "twilio_21610"),
        (twilio_error(500, None, "Internal"), Outcome.UNKNOWN, "twilio_500"),
        (twilio_error(503, 20503, "Service unavailable"), Outcome.UNKNOWN, "twilio_20503"),
        (invalid_json(), Outcome.UNKNOWN, "twilio_bad_response"),
    ],
)
def test_sms_outcomes_are_classified_after_exactly_one_request(
    providers: ProviderServer, behaviour, outcome: Outcome, code: str
) -> None:  # type: ignore[no-untyped-def]
    providers.script("messages", behaviour)
    result = send_sms(client(providers), SMS)
    assert (result.outcome, result.code) == (outcome, code)
    assert providers.count("messages") == 1  # no hidden retry inside the client


def test_sms_timeout_is_ambiguous_and_bounded(providers: ProviderServer) -> None:
    providers.script("messages", hang(10))
    result = send_sms(client(providers, timeout=0.5), SMS)
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "twilio_timeout")
    assert providers.count("messages") == 1


def test_sms_connection_refused_is_safe_to_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = send_sms(make_client(ACCOUNT, timeout=1, base_url=f"http://127.0.0.1:{port}"), SMS)
    assert (result.outcome, result.code) == (Outcome.RETRY, "twilio_connect")


def test_voicemail_waits_for_the_beep_and_speaks_the_script(providers: ProviderServer) -> None:
    drop = OutgoingVoicemail(
        message_id="m2",
        to="+14155550100",
        from_number="+14155550199",
        script="Hi Ada, this is Sam from Acme.",
        status_callback="https://example.test/hooks/twilio/voice/status?message_id=m2",
        voice="Polly.Matthew",
    )
    result = send_voicemail(client(providers), drop)
    assert result.outcome is Outcome.SENT
    assert result.provider_id is not None
    assert result.provider_id.startswith("CA")
    [request] = providers.received("calls")
    assert request.form["MachineDetection"] == "DetectMessageEnd"
    assert request.form["StatusCallback"] == drop.status_callback
    say = ET.fromstring(request.form["Twiml"]).find("Say")
    assert say is not None
    assert say.text == drop.script
    assert say.get("voice") == "Polly.Matthew"


def test_voicemail_plays_recorded_audio(providers: ProviderServer) -> None:
    drop = OutgoingVoicemail(
        "m3", "+14155550100", "+14155550199", "unused", "https://x.test/cb", audio_url="https://x.test/a.mp3"
    )
    assert send_voicemail(client(providers), drop).outcome is Outcome.SENT
    play = ET.fromstring(providers.received("calls")[0].form["Twiml"]).find("Play")
    assert play is not None
    assert play.text == "https://x.test/a.mp3"


def test_voicemail_rate_limited_is_retry(providers: ProviderServer) -> None:
    providers.script("calls", twilio_error(429, 20429))
    drop = OutgoingVoicemail("m4", "+14155550100", "+14155550199", "Hi", "https://x.test/cb")
    assert send_voicemail(client(providers), drop).outcome is Outcome.RETRY
    assert providers.count("calls") == 1
