"""Saving a step whose template is too costly to render is a 422 naming the template field and the bound."""

from __future__ import annotations

import time

from tests.services.campaign.campaigns.conftest import World

NESTED = (
    "{% for a in range(300) %}{% for b in range(300) %}{% for c in range(300) %}x{% endfor %}{% endfor %}{% endfor %}"
)


def test_costly_templates_are_422_naming_the_field_and_the_bound(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    cases = [
        ({"channel": "email", "subject_template": "s", "body_template": NESTED}, "body_template", "loop iterations"),
        (
            {"channel": "email", "subject_template": "{{ 'a'.ljust(50000000) }}", "body_template": "b"},
            "subject_template",
            "100,000 characters",
        ),
        ({"channel": "sms", "sms_template": "{{ '%50000000s' % 'a' }}"}, "sms_template", "100,000 characters"),
        (
            {
                "channel": "email",
                "subject_template": "s",
                "body_template": "b",
                "variants": [{"key": "A", "weight": 1, "body_template": NESTED}],
            },
            "variants[0].body_template",
            "loop iterations",
        ),
    ]
    for body, field, words in cases:
        started = time.monotonic()
        r = world.a.post(f"/api/campaigns/{c['id']}/steps", body)
        assert time.monotonic() - started < 3
        assert r.status_code == 422, r.text
        [error] = r.json()["errors"]
        assert error["field"] == field
        assert error["message"].startswith("too costly to render:")
        assert words in error["message"] or "takes longer than" in error["message"]


def test_a_saved_step_cannot_be_patched_into_a_costly_one(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    step = world.a.add_step(c["id"])
    r = world.a.patch(f"/api/campaigns/{c['id']}/steps/{step['id']}", {"body_template": NESTED})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body_template"
    r = world.a.patch(
        f"/api/campaigns/{c['id']}/steps/{step['id']}",
        {"body_template": "{% for k, v in lead.custom.items() %}{{ k }}: {{ v }}\n{% endfor %}Hi {{ first_name }}"},
    )
    assert r.status_code == 200, r.text
