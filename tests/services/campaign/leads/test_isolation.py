"""Tenant isolation: every lead, import and suppression id of organization B is a 404 for A."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from libs.db.session import tenant_session
from services.campaign.leads.controllers import CONTROLLERS
from tests.services.campaign.leads.conftest import Actor


def snapshot(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return [
            conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1")).all()
            for t in ("leads", "suppressions", "lead_imports")
        ]


def test_every_route_has_a_guard() -> None:
    for controller in CONTROLLERS:
        assert controller.guards, controller
        for name in dir(controller):
            handler = getattr(controller, name)
            if hasattr(handler, "http_methods"):
                assert not (handler.opt or {}).get("exclude_from_auth"), name


def test_b_ids_are_404_for_a_on_every_route(alice: Actor, bob: Actor, run_jobs: Any, engine: Engine) -> None:
    lead = bob.create_lead(email="secret@bob.example", first_name="Secret")
    entry = bob.suppress("blocked@bob.example", channel="email")
    upload = bob.upload(b"email\nbad\nsecret2@bob.example\n")
    run_jobs()
    imp = upload.json()["id"]
    before = snapshot(engine)
    attempts = [
        ("get", f"/api/leads/{lead['id']}", None),
        ("patch", f"/api/leads/{lead['id']}", {"first_name": "Hacked"}),
        ("delete", f"/api/leads/{lead['id']}", None),
        ("get", f"/api/leads/imports/{imp}", None),
        ("get", f"/api/leads/imports/{imp}/report", None),
        ("get", f"/api/suppressions/{entry['id']}", None),
        ("delete", f"/api/suppressions/{entry['id']}", None),
    ]
    for method, path, body in attempts:
        kwargs = {"json": body} if body is not None else {}
        r = getattr(alice, method)(path, **kwargs)
        assert r.status_code == 404, (method, path, r.status_code)
        assert "bob.example" not in r.text
        assert "Secret" not in r.text
    assert snapshot(engine) == before
    unknown = uuid.uuid4()
    assert alice.get(f"/api/leads/{unknown}").status_code == 404


def test_lists_filters_and_exports_never_show_b(alice: Actor, bob: Actor, run_jobs: Any) -> None:
    bob.create_lead(email="secret@bob.example", company="BobCo")
    bob.suppress("blocked@bob.example", channel="email")
    bob.upload(b"email\nbad\n")
    run_jobs()
    alice.create_lead(email="mine@alice.example")
    for params in ({}, {"q": "bob"}, {"company": "BobCo"}, {"email": "secret@bob.example"}, {"status": "active"}):
        items = alice.get("/api/leads", params=params).json()["items"]
        assert all("bob.example" not in str(i) for i in items), params
    assert alice.get("/api/leads/imports").json()["items"] == []
    assert alice.get("/api/suppressions").json()["items"] == []
    assert "bob.example" not in alice.get("/api/suppressions/export").text
    # The same contact is independent per organization: A may add what B suppressed.
    assert alice.create_lead(email="blocked@bob.example")["status"] == "active"


def test_a_query_without_the_org_filter_returns_nothing_under_rls(alice: Actor, bob: Actor, engine: Engine) -> None:
    bob.create_lead(email="secret@bob.example")
    bob.suppress("x@bob.example", channel="email")
    with tenant_session(engine, alice.org_id) as s:
        conn = s.connection()
        counts = [conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in ("leads", "suppressions")]
    assert counts == [0, 0]
