"""Steps: order, delays, templates checked at save time, variants, and what a running campaign allows."""

from __future__ import annotations

import sqlalchemy as sa

from libs.templating import choose_variant, render
from tests.services.campaign.campaigns.conftest import World


def _set_status(world: World, campaign_id: str, status: str) -> None:
    with world.db.begin() as conn:
        conn.execute(sa.text("UPDATE campaigns SET status = :s WHERE id = :id"), {"s": status, "id": campaign_id})


def test_steps_are_ordered_and_delays_keep_their_unit(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    first = world.a.add_step(c["id"])
    second = world.a.add_step(c["id"], channel="sms", sms_template="Hi {{ first_name }}", delay=3, delay_unit="hours")
    third = world.a.add_step(
        c["id"], channel="voicemail", script_template="Hello {{ lead.first_name }}", delay=2, business_days=True
    )
    assert (second["delay"], second["delay_unit"], second["delay_minutes"]) == (3, "hours", 180)
    assert (third["delay"], third["delay_unit"], third["delay_minutes"], third["business_days"]) == (
        2,
        "days",
        2880,
        True,
    )
    inserted = world.a.add_step(c["id"], position=1, subject_template="First!", body_template="b")
    steps = world.a.get(f"/api/campaigns/{c['id']}/steps").json()
    assert [s["id"] for s in steps] == [inserted["id"], first["id"], second["id"], third["id"]]
    assert [s["position"] for s in steps] == [1, 2, 3, 4]
    order = [third["id"], inserted["id"], second["id"], first["id"]]
    r = world.a.put(f"/api/campaigns/{c['id']}/steps/order", {"step_ids": order})
    assert r.status_code == 200, r.text
    assert [s["id"] for s in r.json()] == order
    assert world.a.delete(f"/api/campaigns/{c['id']}/steps/{inserted['id']}").status_code == 204
    steps = world.a.get(f"/api/campaigns/{c['id']}/steps").json()
    assert [(s["id"], s["position"]) for s in steps] == [(third["id"], 1), (second["id"], 2), (first["id"], 3)]
    bad = world.a.put(f"/api/campaigns/{c['id']}/steps/order", {"step_ids": [first["id"]]})
    assert bad.status_code == 422


def test_business_days_need_days_and_delays_are_bounded(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    r = world.a.post(
        f"/api/campaigns/{c['id']}/steps",
        {"channel": "email", "delay": 2, "delay_unit": "hours", "business_days": True},
    )
    assert r.status_code == 422
    r = world.a.post(f"/api/campaigns/{c['id']}/steps", {"channel": "email", "delay": 400, "delay_unit": "days"})
    assert r.status_code == 422
    r = world.a.post(f"/api/campaigns/{c['id']}/steps", {"channel": "fax"})
    assert r.status_code == 422


def test_unknown_template_variable_is_a_422_naming_field_and_variable(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    r = world.a.post(
        f"/api/campaigns/{c['id']}/steps",
        {"channel": "email", "subject_template": "Hi {{ lead.fist_name }}", "body_template": "ok"},
    )
    assert r.status_code == 422
    error = r.json()["errors"][0]
    assert error["field"] == "subject_template"
    assert "lead.fist_name" in error["message"]
    r = world.a.post(
        f"/api/campaigns/{c['id']}/steps",
        {"channel": "email", "subject_template": "s", "body_template": "{% if %}"},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body_template"
    assert "syntax" in r.json()["errors"][0]["message"]
    r = world.a.post(
        f"/api/campaigns/{c['id']}/steps",
        {
            "channel": "email",
            "subject_template": "s",
            "body_template": "b",
            "variants": [{"key": "A", "weight": 1}, {"key": "B", "weight": 1, "body_template": "{{ secret }}"}],
        },
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "variants[1].body_template"


def test_sandbox_refuses_escapes_and_huge_output(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    for body in (
        "{{ brand.name.__class__.__mro__ }}",
        "{{ lead.__class__ }}",
        "{{ 'x' * 100000000 }}",
        "{{ range(10**9)|list }}",
        "{{ lead.first_name|nosuchfilter }}",
    ):
        r = world.a.post(
            f"/api/campaigns/{c['id']}/steps", {"channel": "email", "subject_template": "s", "body_template": body}
        )
        assert r.status_code == 422, body


def test_custom_fields_and_short_names_render() -> None:
    lead = {"first_name": "Ann", "company": "Initech", "custom_fields": {"industry": "printing"}}
    out = render(
        "Hi {{ lead.first_name }} ({{ first_name }}) in {{ lead.custom.industry }} "
        "at {{ company }} from {{ brand.name }}",
        lead=lead,
        brand={"name": "Acme"},
    )
    assert out == "Hi Ann (Ann) in printing at Initech from Acme"


def test_variants_are_deterministic_and_follow_weights() -> None:
    variants = [{"key": "A", "weight": 3}, {"key": "B", "weight": 1}]
    step = "5b3c0d6e-0000-4000-8000-000000000000"
    picks = [choose_variant(f"00000000-0000-4000-8000-{i:012d}", step, variants) for i in range(4000)]
    assert all(p is not None for p in picks)
    share_a = sum(1 for p in picks if p and p["key"] == "A") / len(picks)
    assert 0.70 < share_a < 0.80
    again = [choose_variant(f"00000000-0000-4000-8000-{i:012d}", step, variants) for i in range(4000)]
    assert picks == again
    assert choose_variant("x", step, []) is None


def test_running_campaign_allows_copy_and_appending_only(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    s1 = world.a.add_step(c["id"])
    s2 = world.a.add_step(c["id"], delay=2)
    _set_status(world, c["id"], "active")
    base = f"/api/campaigns/{c['id']}/steps"
    r = world.a.patch(f"{base}/{s1['id']}", {"subject_template": "New subject {{ lead.company }}"})
    assert r.status_code == 200
    assert r.json()["subject_template"] == "New subject {{ lead.company }}"
    r = world.a.patch(f"{base}/{s1['id']}", {"variants": [{"key": "A", "weight": 1}, {"key": "B", "weight": 2}]})
    assert r.status_code == 200
    assert world.a.patch(f"{base}/{s1['id']}", {"channel": "sms"}).status_code == 409
    assert world.a.patch(f"{base}/{s2['id']}", {"delay": 5}).status_code == 409
    assert world.a.patch(f"{base}/{s2['id']}", {"delay": 2}).status_code == 200  # unchanged is fine
    assert world.a.delete(f"{base}/{s1['id']}").status_code == 409
    assert world.a.put(f"{base}/order", {"step_ids": [s2["id"], s1["id"]]}).status_code == 409
    r = world.a.post(base, {"channel": "email", "subject_template": "s", "body_template": "b", "position": 1})
    assert r.status_code == 409
    appended = world.a.add_step(c["id"], delay=1)
    assert appended["position"] == 3
    r = world.a.patch(
        f"/api/campaigns/{c['id']}", {"send_window": {"weekdays": [1, 2], "start": "10:00", "end": "12:00"}}
    )
    assert r.status_code == 200
    assert r.json()["send_window"] == {"weekdays": [1, 2], "start": "10:00", "end": "12:00"}
    assert world.a.patch(f"/api/campaigns/{c['id']}", {"brand_id": str(world.brand_b)}).status_code == 409


def test_a_step_may_keep_its_own_send_window(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    own = world.a.add_step(c["id"], send_window={"weekdays": [5, 1], "start": "10:00", "end": "12:00"})
    plain = world.a.add_step(c["id"])
    assert own["send_window"] == {"weekdays": [1, 5], "start": "10:00", "end": "12:00"}
    assert plain["send_window"] is None  # the campaign's
    base = f"/api/campaigns/{c['id']}/steps"
    early = {"weekdays": [0], "start": "08:00", "end": "09:00"}
    r = world.a.patch(f"{base}/{plain['id']}", {"send_window": early})
    assert (r.status_code, r.json()["send_window"]) == (200, early), r.text
    r = world.a.patch(f"{base}/{plain['id']}", {"subject_template": "Other"})
    assert r.json()["send_window"] == early  # omitted: kept
    clone = world.a.post(f"/api/campaigns/{c['id']}/clone", {"name": "Copy"}).json()
    copied = world.a.get(f"/api/campaigns/{clone['id']}/steps").json()
    assert [s["send_window"] for s in copied] == [own["send_window"], early]
    bad = world.a.patch(f"{base}/{own['id']}", {"send_window": {"weekdays": [0], "start": "12:00", "end": "10:00"}})
    assert bad.status_code == 422
    assert any(e["field"].startswith("send_window") for e in bad.json()["errors"]), bad.text
    _set_status(world, c["id"], "active")
    r = world.a.patch(f"{base}/{plain['id']}", {"send_window": None})  # a running campaign may change windows
    assert (r.status_code, r.json()["send_window"]) == (200, None), r.text
    assert world.a.get(f"{base}/{own['id']}").json()["send_window"]["start"] == "10:00"

    # The worker reads a step's window as COALESCE(step, campaign): "the campaign's" must be SQL NULL,
    # not a JSON null, or a step without its own window would ignore the campaign's.
    with world.db.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT s.id::text, s.send_window IS NULL, COALESCE(s.send_window, c.send_window) = c.send_window "
                "FROM campaign_steps s JOIN campaigns c ON c.id = s.campaign_id WHERE c.id = :c"
            ),
            {"c": c["id"]},
        ).all()
    assert {r[0]: (r[1], r[2]) for r in rows} == {plain["id"]: (True, True), own["id"]: (False, False)}
    later = world.a.add_step(c["id"])
    with world.db.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT send_window IS NULL FROM campaign_steps WHERE id = :id"), {"id": later["id"]}
        ).scalar_one()
    assert stored is True
