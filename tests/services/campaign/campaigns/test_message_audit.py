"""GET /api/messages/{id}: admins see the whole audit trail of a message's content, other roles do not."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from libs.security import Role
from tests.services.campaign.campaigns.conftest import World, seed_lead

PROMPT = [{"role": "system", "content": "Write for Acme; secret-instructions-7f3"}, {"role": "user", "content": "Ann"}]
INPUT = {"first_name": "Ann", "company": "Initech"}
OUTPUT = {"subject": "Hi Ann", "body": "See https://evil.example"}


def message_with_personalization(world: World, **fields: Any) -> uuid.UUID:
    """A sent message of org A and the worker's record of how its content was written."""
    c = world.a.create_campaign(world.brand_a)
    step = world.a.add_step(c["id"])
    lead = seed_lead(world.db, world.a.org_id)
    enrollment_id, message_id = uuid.uuid4(), uuid.uuid4()
    values = {
        "source": "openai",
        "fallback_reason": None,
        "prompt": PROMPT,
        "input": INPUT,
        "output": OUTPUT,
        "content": {"subject": "Hi Ann", "body": "Hello"},
        **fields,
    }
    with world.db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO enrollments (id, org_id, campaign_id, lead_id, status, created_at, updated_at) "
                "VALUES (:id, :o, :c, :l, 'active', now(), now())"
            ),
            {"id": enrollment_id, "o": world.a.org_id, "c": c["id"], "l": lead},
        )
        conn.execute(
            sa.text(
                "INSERT INTO messages (id, org_id, enrollment_id, step_id, campaign_id, lead_id, channel, status, "
                "created_at, updated_at) VALUES (:id, :o, :e, :s, :c, :l, 'email', 'sent', now(), now())"
            ),
            {"id": message_id, "o": world.a.org_id, "e": enrollment_id, "s": step["id"], "c": c["id"], "l": lead},
        )
        conn.execute(
            sa.text(
                "INSERT INTO personalizations (id, org_id, message_id, enrollment_id, step_id, prompt_version, "
                "channel, source, model, prompt, input, output, content, fallback_reason, prompt_tokens, "
                "completion_tokens, cost_usd, latency_ms, created_at) VALUES (gen_random_uuid(), :o, :m, :e, :s, "
                "'v1', 'email', :source, 'gpt-4o-mini', CAST(:prompt AS jsonb), CAST(:input AS jsonb), "
                "CAST(:output AS jsonb), CAST(:content AS jsonb), :reason, 120, 40, 0.000042, 300, now())"
            ),
            {
                "o": world.a.org_id,
                "m": message_id,
                "e": enrollment_id,
                "s": step["id"],
                "source": values["source"],
                "reason": values["fallback_reason"],
                "prompt": json.dumps(values["prompt"]),
                "input": json.dumps(values["input"]),
                "output": json.dumps(values["output"]) if values["output"] is not None else None,
                "content": json.dumps(values["content"]),
            },
        )
    return message_id


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OWNER])
def test_admins_see_the_prompt_the_input_the_output_and_each_guardrail_result(world: World, role: Role) -> None:
    m = message_with_personalization(world)
    r = world.a.as_role(role).get(f"/api/messages/{m}")
    assert r.status_code == 200, r.text
    audit = r.json()["audit"]
    assert audit["prompt"] == PROMPT
    assert audit["input"] == INPUT
    assert audit["output"] == OUTPUT
    assert audit["content"] == {"subject": "Hi Ann", "body": "Hello"}
    assert audit["guardrails"] == [{"check": "output", "passed": True, "reason": None}]
    assert r.json()["personalization"]["prompt_tokens"] == 120


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_other_roles_see_source_model_tokens_and_cost_but_never_the_audit(world: World, role: Role) -> None:
    m = message_with_personalization(world)
    r = world.a.as_role(role).get(f"/api/messages/{m}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["audit"] is None
    personalization = body["personalization"]
    assert (personalization["source"], personalization["model"]) == ("openai", "gpt-4o-mini")
    assert (personalization["prompt_tokens"], personalization["completion_tokens"]) == (120, 40)
    assert personalization["cost_usd"] == pytest.approx(0.000042)
    assert "secret-instructions-7f3" not in r.text
    assert "Initech" not in r.text
    assert "evil.example" not in r.text


def test_a_refused_output_is_a_failed_output_guardrail_with_its_reason(world: World) -> None:
    m = message_with_personalization(world, source="fallback", fallback_reason="invalid_output:foreign_link")
    audit = world.a.as_role(Role.ADMIN).get(f"/api/messages/{m}").json()["audit"]
    assert audit["guardrails"] == [
        {"check": "model_response", "passed": True, "reason": None},
        {"check": "output", "passed": False, "reason": "foreign_link"},
    ]
    assert audit["output"] == OUTPUT


def test_a_model_failure_is_a_failed_model_response_and_the_local_writer_ran_no_check(world: World) -> None:
    timed_out = message_with_personalization(world, source="fallback", fallback_reason="openai_timeout", output=None)
    audit = world.a.get(f"/api/messages/{timed_out}").json()["audit"]
    assert audit["guardrails"] == [{"check": "model_response", "passed": False, "reason": "openai_timeout"}]
    assert audit["output"] is None
    local = message_with_personalization(world, source="local", prompt=[], output=None)
    audit = world.a.get(f"/api/messages/{local}").json()["audit"]
    assert audit["guardrails"] == []
    assert audit["prompt"] == []


def test_before_the_content_is_written_there_is_no_audit_even_for_admins(world: World) -> None:
    m = message_with_personalization(world)
    with world.db.begin() as conn:
        conn.execute(sa.text("DELETE FROM personalizations WHERE message_id = :m"), {"m": m})
    body = world.a.as_role(Role.OWNER).get(f"/api/messages/{m}").json()
    assert body["audit"] is None
    assert body["personalization"] is None
