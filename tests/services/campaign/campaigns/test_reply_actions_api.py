"""A campaign's reply actions: safe defaults, overrides on create and update, 422 naming the field."""

from __future__ import annotations

from libs.db.models.campaign import DEFAULT_REPLY_ACTIONS
from tests.services.campaign.campaigns.conftest import World


def test_a_new_campaign_has_the_safe_defaults(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    assert c["reply_actions"] == DEFAULT_REPLY_ACTIONS
    assert c["reply_actions"]["out_of_office"] == "pause"


def test_overrides_are_kept_and_the_rest_stay_default(world: World) -> None:
    r = world.a.post(
        "/api/campaigns",
        {"brand_id": str(world.brand_a), "name": "x", "reply_actions": {"referral": "refer_and_enroll"}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["reply_actions"] == {**DEFAULT_REPLY_ACTIONS, "referral": "refer_and_enroll"}
    patched = world.a.patch(f"/api/campaigns/{r.json()['id']}", {"reply_actions": {"question": "continue"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["reply_actions"] == {**DEFAULT_REPLY_ACTIONS, "question": "continue"}
    cloned = world.a.post(f"/api/campaigns/{r.json()['id']}/clone", {"name": "Copy"})
    assert cloned.json()["reply_actions"]["question"] == "continue"


def test_an_unknown_intent_or_action_is_a_422_naming_the_field(world: World) -> None:
    for actions in ({"sarcasm": "stop"}, {"question": "explode"}):
        r = world.a.post("/api/campaigns", {"brand_id": str(world.brand_a), "name": "x", "reply_actions": actions})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        fields = [e["field"] for e in r.json()["errors"]]
        assert any(f.startswith("reply_actions") for f in fields), fields
    c = world.a.create_campaign(world.brand_a)
    r = world.a.patch(f"/api/campaigns/{c['id']}", {"reply_actions": None})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["reply_actions"]
