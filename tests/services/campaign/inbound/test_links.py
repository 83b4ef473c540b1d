"""Signed links: RFC 8058 unsubscribe, the open pixel, and click redirects limited to the message's URLs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.links import LinkKind, sign_link
from libs.settings import DEV_SECRET
from tests.services.campaign.inbound.factories import add_message, create_world, one, rows

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def email(engine: Engine, box: SecretBox) -> tuple[Any, uuid.UUID, uuid.UUID]:
    world = create_world(engine, box)
    first = add_message(engine, world, step=0, links=["https://acme.example/pricing", "https://acme.example/demo?x=1"])
    queued = add_message(engine, world, step=2, status="queued")
    return world, first, queued


def token(kind: LinkKind, message_id: uuid.UUID, index: int | None = None) -> str:
    return sign_link(DEV_SECRET, kind, message_id, index)


def test_get_shows_a_confirmation_page_and_unsubscribes_nobody(
    client: TestClient,
    engine: Engine,
    email: Any,  # type: ignore[type-arg]
) -> None:
    _, first, _ = email
    r = client.get(f"/u/{token(LinkKind.UNSUBSCRIBE, first)}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in r.text
    assert "l***@example.com" in r.text
    assert "lead0@example.com" not in r.text
    for _ in range(3):  # link scanners and prefetchers GET, sometimes repeatedly
        client.get(f"/u/{token(LinkKind.UNSUBSCRIBE, first)}")
    assert one(engine, "SELECT count(*) FROM suppressions") == 0
    assert one(engine, "SELECT count(*) FROM inbound_events") == 0


def test_one_click_post_unsubscribes_at_once_and_is_idempotent(
    client: TestClient,
    engine: Engine,
    email: Any,  # type: ignore[type-arg]
) -> None:
    _, first, queued = email
    url = f"/u/{token(LinkKind.UNSUBSCRIBE, first)}"
    r = client.post(url, data=ONE_CLICK)
    assert r.status_code == 200
    assert "unsubscribed" in r.text
    assert rows(engine, "SELECT channel, kind, value, reason FROM suppressions") == [
        ("email", "email", "lead0@example.com", "unsubscribe")
    ]
    # Effective within the request: the enrollment is stopped, the queued email will not go.
    assert one(engine, "SELECT status FROM enrollments") == "stopped"
    assert one(engine, "SELECT status FROM messages WHERE id = :m", m=queued) == "skipped"
    event = rows(engine, "SELECT received_at, effective_at FROM inbound_events")[0]
    assert event.effective_at >= event.received_at
    assert client.post(url, data=ONE_CLICK).status_code == 200
    assert one(engine, "SELECT count(*) FROM suppressions") == 1
    assert one(engine, "SELECT count(*) FROM message_events WHERE type = 'unsubscribed'") == 1


def test_a_post_without_the_one_click_body_changes_nothing(
    client: TestClient,
    engine: Engine,
    email: Any,  # type: ignore[type-arg]
) -> None:
    _, first, _ = email
    r = client.post(f"/u/{token(LinkKind.UNSUBSCRIBE, first)}", data={"List-Unsubscribe": "please"})
    assert r.status_code == 400
    assert one(engine, "SELECT count(*) FROM suppressions") == 0


@pytest.mark.parametrize("route", ["/u/", "/o/", "/c/"])
def test_forged_or_altered_tokens_are_refused(
    route: str,
    client: TestClient,
    engine: Engine,
    email: Any,  # type: ignore[type-arg]
) -> None:
    _, first, _ = email
    kind = {"/u/": LinkKind.UNSUBSCRIBE, "/o/": LinkKind.OPEN, "/c/": LinkKind.CLICK}[route]
    good = token(kind, first, 0 if kind is LinkKind.CLICK else None)
    body, _, mac = good.partition(".")
    other = token(kind, uuid.uuid4(), 0 if kind is LinkKind.CLICK else None)
    forged = [
        sign_link("another-secret", kind, first, 0 if kind is LinkKind.CLICK else None),
        other.partition(".")[0] + "." + mac,  # someone else's payload under this signature
        body + "." + ("A" if mac[0] != "A" else "B") + mac[1:],
        token(LinkKind.OPEN if kind is not LinkKind.OPEN else LinkKind.UNSUBSCRIBE, first),  # wrong kind
        "not-a-token",
        other,  # valid signature, but no such message
    ]
    for bad in forged:
        r = client.post(f"{route}{bad}", data=ONE_CLICK) if route == "/u/" else client.get(f"{route}{bad}")
        assert r.status_code == 404, bad
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "Location" not in r.headers
    assert one(engine, "SELECT count(*) FROM suppressions") == 0
    assert one(engine, "SELECT count(*) FROM inbound_events") == 0


def test_the_open_pixel_records_one_open(client: TestClient, engine: Engine, email: Any) -> None:  # type: ignore[type-arg]
    _, first, _ = email
    for _ in range(2):
        r = client.get(f"/o/{token(LinkKind.OPEN, first)}")
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/gif"
        assert r.content.startswith(b"GIF89a")
    assert one(engine, "SELECT count(*) FROM message_events WHERE type = 'opened'") == 1


def test_a_click_redirects_only_to_urls_of_that_message(
    client: TestClient,
    engine: Engine,
    email: Any,  # type: ignore[type-arg]
) -> None:
    world, first, queued = email
    r = client.get(f"/c/{token(LinkKind.CLICK, first, 1)}", follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "https://acme.example/demo?x=1"
    assert (
        one(engine, "SELECT data->>'url' FROM message_events WHERE type = 'clicked'") == "https://acme.example/demo?x=1"
    )
    # An index the message never had, and a validly signed link of a message with no such URL: refused.
    assert client.get(f"/c/{token(LinkKind.CLICK, first, 7)}", follow_redirects=False).status_code == 404
    assert client.get(f"/c/{token(LinkKind.CLICK, queued, 0)}", follow_redirects=False).status_code == 404
    assert client.get(f"/c/{token(LinkKind.CLICK, first)}", follow_redirects=False).status_code == 404
    assert (
        client.get(f"/c/{token(LinkKind.CLICK, first)}?url=https://evil.example", follow_redirects=False).status_code
        == 404
    )
    # The default stop rules do not stop a sequence on a click.
    assert one(engine, "SELECT status FROM enrollments WHERE id = :e", e=world.enrollment_ids[0]) == "active"


def test_both_unsubscribe_pages_name_the_brand(client: TestClient, email: Any) -> None:  # type: ignore[type-arg]
    _, first, _ = email
    url = f"/u/{token(LinkKind.UNSUBSCRIBE, first)}"
    shown = client.get(url)
    done = client.post(url, data=ONE_CLICK)
    for page in (shown, done):
        assert page.status_code == 200
        assert "You will no longer receive email from Acme Analytics." in page.text
        assert page.headers["content-type"] == "text/html; charset=utf-8"


def test_the_brand_name_on_the_unsubscribe_pages_is_escaped(
    client: TestClient,  # type: ignore[type-arg]
    engine: Engine,
    email: Any,
) -> None:
    world, first, _ = email
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE brands SET name = :n WHERE id = :b"),
            {"n": '<script>alert("x")</script> & Co', "b": world.brand_id},
        )
    url = f"/u/{token(LinkKind.UNSUBSCRIBE, first)}"
    for page in (client.get(url), client.post(url, data=ONE_CLICK)):
        assert "<script>" not in page.text
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in page.text


def test_every_public_page_names_its_charset_once(client: TestClient, email: Any) -> None:  # type: ignore[type-arg]
    _, first, _ = email
    url = f"/u/{token(LinkKind.UNSUBSCRIBE, first)}"
    answers = [
        client.get(url),
        client.post(url, data=ONE_CLICK),
        client.get(f"/o/{token(LinkKind.OPEN, first)}"),
        client.get("/u/not-a-token"),
    ]
    for answer in answers:
        content_type = answer.headers["content-type"]
        assert content_type.lower().count("charset") <= 1, content_type
    assert answers[0].headers["content-type"] == "text/html; charset=utf-8"
    assert answers[2].headers["content-type"] == "image/gif"
