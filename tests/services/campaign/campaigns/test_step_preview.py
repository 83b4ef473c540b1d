"""Step preview: a step (or the editor's unsaved copy) rendered for one lead exactly as the worker composes it."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from libs.compose import sms_text, voicemail_script
from libs.security import Role
from services.worker.jobs import _request
from services.worker.personalize import Personalizer
from tests.services.campaign.campaigns.conftest import World, seed_lead

SIGNATURE = "Jane Doe\nAcme Inc."


def brand_copy(world: World, brand_id: uuid.UUID, **columns: Any) -> None:
    values = {
        "email_signature": SIGNATURE,
        "sms_signoff": "- Jane at Acme",
        "opt_out_sms": "Reply STOP to opt out.",
        "opt_out_voicemail": "Press 9 to opt out.",
        "value_proposition": "We make widgets faster.",
        **columns,
    }
    sets = ", ".join(f"{k} = :{k}" for k in values)
    with world.db.begin() as conn:
        conn.execute(sa.text(f"UPDATE brands SET {sets} WHERE id = :id"), {**values, "id": brand_id})


def add_sender(world: World, kind: str, from_name: str | None = None) -> None:
    with world.db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO senders (id, org_id, brand_id, kind, from_name, from_address, phone_number, "
                "verified_at, created_at) VALUES (:id, :org, :brand, :kind, :name, :addr, :phone, now(), now())"
            ),
            {
                "id": uuid.uuid4(),
                "org": world.a.org_id,
                "brand": world.brand_a,
                "kind": kind,
                "name": from_name,
                "addr": "jane@acme.example" if kind == "email" else None,
                "phone": None if kind == "email" else "+15550001111",
            },
        )


def preview(world: World, campaign_id: str, step_id: str, **body: Any) -> Any:
    return world.a.post(f"/api/campaigns/{campaign_id}/steps/{step_id}/preview", body)


@pytest.fixture
def email_step(world: World) -> tuple[dict[str, Any], dict[str, Any], uuid.UUID]:
    brand_copy(world, world.brand_a)
    campaign = world.a.create_campaign(world.brand_a)
    step = world.a.add_step(campaign["id"])
    lead = seed_lead(world.db, world.a.org_id, first_name="Ada", company="Analytical Engines")
    return campaign, step, lead


def test_an_email_step_renders_for_the_lead_with_the_signature(email_step: Any, world: World) -> None:
    campaign, step, lead = email_step
    r = preview(world, campaign["id"], step["id"], lead_id=str(lead))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["channel"] == "email"
    assert body["subject"] == "Hi Ada"
    assert body["body"] == f"Hello Ada at Analytical Engines, from Acme.\n\n{SIGNATURE}"
    assert body["personalized"] is False
    assert body["would_personalize"] is False
    assert body["variant"] is None
    assert body["default_copy"] == []
    assert "postal address" in body["note"]


def test_unsaved_copy_is_previewed_and_nothing_is_saved(email_step: Any, world: World) -> None:
    campaign, step, lead = email_step
    r = preview(
        world, campaign["id"], step["id"], lead_id=str(lead), body_template="Dear {{ first_name }}, {{ brand.name }}"
    )
    assert r.status_code == 200, r.text
    assert r.json()["body"] == f"Dear Ada, Acme\n\n{SIGNATURE}"
    assert r.json()["subject"] == "Hi Ada"  # the saved subject, since none was sent
    saved = world.a.get(f"/api/campaigns/{campaign['id']}/steps/{step['id']}").json()
    assert saved["body_template"] == step["body_template"]
    # An emptied field falls back to the default copy, as the worker's writer does.
    r = preview(world, campaign["id"], step["id"], lead_id=str(lead), subject_template=None)
    assert r.json()["subject"] == "A quick idea for Analytical Engines"
    assert r.json()["default_copy"] == ["subject_template"]


def test_sms_and_voicemail_carry_their_closings(world: World) -> None:
    brand_copy(world, world.brand_a)
    add_sender(world, "sms", "Jane")
    campaign = world.a.create_campaign(world.brand_a)
    sms = world.a.add_step(campaign["id"], channel="sms", sms_template="Hi {{ first_name }}, it's {{ sender_name }}.")
    vm = world.a.add_step(campaign["id"], channel="voicemail", script_template="Hello {{ lead.first_name }}.")
    lead = seed_lead(world.db, world.a.org_id, first_name="Grace", phone="+15551234567")
    r = preview(world, campaign["id"], sms["id"], lead_id=str(lead))
    assert r.status_code == 200, r.text
    assert r.json()["subject"] is None
    assert r.json()["body"] == "Hi Grace, it's Jane. - Jane at Acme Reply STOP to opt out."
    r = preview(world, campaign["id"], vm["id"], lead_id=str(lead))
    assert r.status_code == 200, r.text
    assert r.json()["body"] == "Hello Grace. Press 9 to opt out."
    # An unsaved channel renders the step as that channel would.
    r = preview(world, campaign["id"], vm["id"], lead_id=str(lead), channel="sms", sms_template="Yo {{ first_name }}")
    assert r.json()["channel"] == "sms"
    assert r.json()["body"] == "Yo Grace - Jane at Acme Reply STOP to opt out."


def test_a_variant_overrides_the_steps_copy(email_step: Any, world: World) -> None:
    campaign, _, lead = email_step
    step = world.a.add_step(campaign["id"], variants=[{"key": "b", "subject_template": "Quick one, {{ first_name }}?"}])
    r = preview(world, campaign["id"], step["id"], lead_id=str(lead), variant="b")
    assert r.status_code == 200, r.text
    assert (r.json()["variant"], r.json()["subject"]) == ("b", "Quick one, Ada?")
    assert r.json()["body"].startswith("Hello Ada")  # the variant has no body: the step's
    r = preview(world, campaign["id"], step["id"], lead_id=str(lead), variant="zzz")
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["variant"]
    # Unsaved variants are previewed too.
    r = preview(
        world,
        campaign["id"],
        step["id"],
        lead_id=str(lead),
        variant="c",
        variants=[{"key": "c", "body_template": "C for {{ company }}"}],
    )
    assert r.status_code == 200, r.text
    assert r.json()["body"] == f"C for Analytical Engines\n\n{SIGNATURE}"


def test_template_errors_name_the_field(email_step: Any, world: World) -> None:
    campaign, step, lead = email_step
    r = preview(world, campaign["id"], step["id"], lead_id=str(lead), body_template="Hi {{ lead.nickname }}")
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in r.json()["errors"]] == ["body_template"]
    r = preview(world, campaign["id"], step["id"], lead_id=str(lead), subject_template="Hi {{ first_name ")
    assert [e["field"] for e in r.json()["errors"]] == ["subject_template"]
    r = preview(
        world,
        campaign["id"],
        step["id"],
        lead_id=str(lead),
        variants=[{"key": "x", "body_template": "{% if %}"}],
    )
    assert [e["field"] for e in r.json()["errors"]] == ["variants[0].body_template"]


def test_render_bounds_answer_422_quickly(world: World) -> None:
    brand_copy(world, world.brand_a)
    campaign = world.a.create_campaign(world.brand_a)
    step = world.a.add_step(campaign["id"])
    lead = seed_lead(world.db, world.a.org_id, first_name="Ada", custom_fields={"note": "x" * 5000})
    started = time.monotonic()
    # Passes the check on sample data, blows the output bound on this lead's 5,000-character field.
    r = preview(world, campaign["id"], step["id"], lead_id=str(lead), body_template="{{ lead.custom.note * 50 }}")
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["body_template"]
    r = preview(
        world,
        campaign["id"],
        step["id"],
        lead_id=str(lead),
        body_template="{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}",
    )
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["body_template"]
    assert time.monotonic() - started < 10


def test_missing_and_foreign_things_are_404(email_step: Any, world: World) -> None:
    campaign, step, lead = email_step
    r = preview(world, campaign["id"], step["id"], lead_id=str(uuid.uuid4()))
    assert r.status_code == 404
    assert [e["field"] for e in r.json()["errors"]] == ["lead_id"]
    foreign_lead = seed_lead(world.db, world.b.org_id, first_name="Mallory")
    assert preview(world, campaign["id"], step["id"], lead_id=str(foreign_lead)).status_code == 404
    path = f"/api/campaigns/{campaign['id']}/steps/{step['id']}/preview"
    other_lead = seed_lead(world.db, world.b.org_id)
    assert world.b.post(path, {"lead_id": str(other_lead)}).status_code == 404  # another org's campaign
    other = world.b.create_campaign(world.brand_b)
    other_step = world.b.add_step(other["id"])
    assert preview(world, campaign["id"], other_step["id"], lead_id=str(lead)).status_code == 404
    r = preview(world, campaign["id"], step["id"])
    assert r.status_code == 422
    assert "lead_id" in [e["field"] for e in r.json()["errors"]]


def test_viewers_and_read_only_keys_may_preview(email_step: Any, world: World) -> None:
    campaign, step, lead = email_step
    path = f"/api/campaigns/{campaign['id']}/steps/{step['id']}/preview"
    assert world.a.as_role(Role.VIEWER).post(path, {"lead_id": str(lead)}).status_code == 200
    for scopes, status in ((["campaigns:read"], 200), (["leads:read"], 403)):
        headers = world.a.signer.headers(org_id=world.a.org_id, role=Role.MEMBER, scopes=scopes)
        r = world.a.client.post(path, json={"lead_id": str(lead)}, headers=headers)
        assert r.status_code == status, r.text
    # A read-only key still cannot save the step.
    headers = world.a.signer.headers(org_id=world.a.org_id, role=Role.MEMBER, scopes=["campaigns:read"])
    r = world.a.client.patch(f"/api/campaigns/{campaign['id']}/steps/{step['id']}", json={}, headers=headers)
    assert r.status_code == 403


def test_says_when_the_worker_would_personalize(email_step: Any, world: World) -> None:
    campaign, step, lead = email_step
    with world.db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO provider_credentials (id, org_id, provider, secret_encrypted, secret_last4, created_at, "
                "updated_at) "
                "VALUES (:id, :org, 'openai', 'x', 'abcd', now(), now())"
            ),
            {"id": uuid.uuid4(), "org": world.a.org_id},
        )
    r = preview(world, campaign["id"], step["id"], lead_id=str(lead))
    assert (r.json()["personalized"], r.json()["would_personalize"]) == (False, True)
    assert "OpenAI" in r.json()["note"]
    world.a.patch(f"/api/campaigns/{campaign['id']}", {"ai": {"enabled": False}})
    r = preview(world, campaign["id"], step["id"], lead_id=str(lead))
    assert r.json()["would_personalize"] is False


# --- agreement with the worker --------------------------------------------------------------------

WORKER_ROW = """
SELECT s.channel, s.subject_template, s.body_template, s.sms_template, s.script_template, s.ai_instructions,
       c.ai, l.email, l.phone, l.first_name, l.last_name, l.company, l.title, l.timezone AS lead_timezone,
       l.custom_fields, b.name AS brand_name, b.website, b.description, b.value_proposition, b.target_audience,
       b.tone_of_voice, b.proof_points, b.forbidden_claims, b.email_signature, b.sms_signoff, b.postal_address,
       b.opt_out_email, b.opt_out_sms, b.opt_out_voicemail,
       (SELECT x.from_name FROM senders x WHERE x.brand_id = b.id
          AND x.kind = CASE s.channel WHEN 'email' THEN 'email' WHEN 'sms' THEN 'sms' ELSE 'voice' END
        ORDER BY x.verified_at IS NULL, x.created_at, x.id LIMIT 1) AS from_name
FROM campaign_steps s JOIN campaigns c ON c.id = s.campaign_id JOIN brands b ON b.id = c.brand_id, leads l
WHERE s.id = :step AND l.id = :lead
"""


def worker_composes(world: World, step_id: str, lead_id: uuid.UUID, variant: Any = None) -> tuple[Any, str]:
    """What the worker sends for this step and lead without a model: its own request, writer and channel text."""
    with world.db.connect() as conn:
        row = SimpleNamespace(**conn.execute(sa.text(WORKER_ROW), {"step": step_id, "lead": lead_id}).one()._mapping)
    draft = Personalizer(None, model="unused").write(_request(row, variant))  # type: ignore[arg-type]
    if row.channel == "email":
        return draft.subject or row.brand_name, draft.body
    if row.channel == "sms":
        return None, sms_text(draft.body, row.sms_signoff, row.opt_out_sms)
    return None, voicemail_script(draft.body, row.opt_out_voicemail)


@pytest.mark.parametrize(
    "step",
    [
        {"channel": "email"},
        {"channel": "email", "subject_template": None, "body_template": "{{ brand.email_signature }}\nbye"},
        {"channel": "email", "variants": [{"key": "v1", "body_template": "V1 {{ lead.full_name }}"}]},
        {"channel": "sms", "sms_template": "Hi {{ first_name }} from {{ sender_name }} - Jane at Acme"},
        {"channel": "sms", "sms_template": "{{ lead.custom.missing }}"},
        {"channel": "voicemail", "script_template": "Hi {{ lead.first_name }} at {{ company }}."},
    ],
)
def test_the_preview_is_what_the_worker_composes(world: World, step: dict[str, Any]) -> None:
    brand_copy(world, world.brand_a)
    add_sender(world, "sms", "Jane")
    campaign = world.a.create_campaign(world.brand_a)
    created = world.a.add_step(campaign["id"], **step)
    lead = seed_lead(
        world.db, world.a.org_id, first_name="Ada", last_name="Lovelace", company="AE", phone="+15551234567"
    )
    variant = created["variants"][0] if created["variants"] else None
    key = variant["key"] if variant else None
    r = preview(world, campaign["id"], created["id"], lead_id=str(lead), variant=key)
    assert r.status_code == 200, r.text
    assert (r.json()["subject"], r.json()["body"]) == worker_composes(world, created["id"], lead, variant)
