"""Readiness: per channel, what is missing before a campaign on it may launch."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from litestar.testing import TestClient

from libs.db.models.campaign import Campaign
from libs.db.session import system_session
from libs.settings import Environment
from services.brand.app import create_app
from services.brand.service import SmtpCheckSettings
from services.brand.settings import BrandSettings
from tests.services.brand.conftest import Actor
from tests.services.brand.test_credentials import create_openai, create_twilio
from tests.support.smtp import SmtpServer
from tests.support.tokens import TokenSigner


def _missing(readiness: dict[str, Any], channel: str) -> set[str]:
    return {gap["code"] for gap in readiness["channels"][channel]["missing"]}


def test_a_bare_brand_is_ready_for_nothing_and_says_why(alice: Actor) -> None:
    brand = alice.create_brand(postal_address=None, opt_out_email=None, opt_out_sms=None, opt_out_voicemail=None)
    r = alice.get(f"/api/brands/{brand['id']}/readiness")
    assert r.status_code == 200
    body = r.json()
    assert body["brand_id"] == brand["id"]
    assert body["ready"] is False
    assert set(body["channels"]) == {"email", "sms", "voicemail"}
    assert _missing(body, "email") == {"postal_address", "opt_out_email", "email_sender"}
    assert _missing(body, "sms") == {"sms_sender", "opt_out_sms"}
    assert _missing(body, "voicemail") == {"voice_sender", "opt_out_voicemail"}
    assert {g["code"] for g in body["channels"]["email"]["warnings"]} == {"openai_credentials"}
    # Outside production the worker's local recorder takes SMS and voicemail: a warning, not a gap.
    assert {g["code"] for g in body["channels"]["sms"]["warnings"]} == {"openai_credentials", "twilio_credentials"}
    gap = body["channels"]["email"]["missing"][0]
    assert set(gap) == {"code", "message", "field"}


def test_an_unverified_email_sender_is_not_enough(alice: Actor) -> None:
    brand = alice.create_brand()
    alice.create_email_sender(brand["id"])
    body = alice.get(f"/api/brands/{brand['id']}/readiness").json()
    assert _missing(body, "email") == {"verified_email_sender"}


def test_everything_in_place_makes_every_channel_ready(alice: Actor) -> None:
    brand = alice.create_brand()
    with SmtpServer(credentials={"jane@acme.example": "correct-horse-battery-staple"}) as smtp:
        sender = alice.create_email_sender(brand["id"], smtp, smtp_security="none")
        assert alice.post(f"/api/brands/{brand['id']}/senders/{sender['id']}/verify").status_code == 200
    alice.create_sender(brand["id"], kind="sms", phone_number="+14155552671")
    alice.create_sender(brand["id"], kind="voice", phone_number="+14155552671", tts_voice="Polly.Joanna")
    create_twilio(alice)
    create_openai(alice)
    body = alice.get(f"/api/brands/{brand['id']}/readiness").json()
    assert body["ready"] is True
    for channel in ("email", "sms", "voicemail"):
        assert body["channels"][channel] == {"ready": True, "missing": [], "warnings": []}


def test_sms_only_needs_its_own_things(alice: Actor) -> None:
    brand = alice.create_brand(postal_address=None)
    alice.create_sender(brand["id"], kind="sms", messaging_service_sid="MG" + "b" * 32)
    create_twilio(alice)
    body = alice.get(f"/api/brands/{brand['id']}/readiness").json()
    assert body["channels"]["sms"]["ready"] is True
    assert body["channels"]["email"]["ready"] is False
    assert body["ready"] is False


def test_an_archived_brand_is_ready_for_nothing(alice: Actor, engine: sa.Engine) -> None:
    brand = alice.create_brand()
    with system_session(engine) as s:
        s.add(Campaign(org_id=alice.org_id, brand_id=uuid.UUID(brand["id"]), name="Uses it"))
    assert alice.delete(f"/api/brands/{brand['id']}").status_code == 200
    body = alice.get(f"/api/brands/{brand['id']}/readiness").json()
    for channel in ("email", "sms", "voicemail"):
        assert "brand_archived" in _missing(body, channel)


def test_production_needs_twilio_credentials_for_sms_and_voicemail(
    alice: Actor, brand_settings: BrandSettings, signer: TokenSigner, smtp_check: SmtpCheckSettings
) -> None:
    production = brand_settings.model_copy(update={"env": Environment.PRODUCTION})
    assert production.twilio_required
    assert not brand_settings.twilio_required
    brand = alice.create_brand()
    alice.create_sender(brand["id"], kind="sms", phone_number="+14155552671")
    alice.create_sender(brand["id"], kind="voice", phone_number="+14155552671", tts_voice="Polly.Joanna")
    with TestClient(create_app(production, verifier=signer.verifier(), smtp_check=smtp_check)) as client:
        body = client.get(f"/api/brands/{brand['id']}/readiness", headers=alice.headers()).json()
    assert _missing(body, "sms") == {"twilio_credentials"}
    assert _missing(body, "voicemail") == {"twilio_credentials"}
    assert body["channels"]["sms"]["ready"] is False
    create_twilio(alice)
    assert alice.get(f"/api/brands/{brand['id']}/readiness").json()["channels"]["sms"]["ready"] is True
