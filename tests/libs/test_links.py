"""Signed per-message links: tokens resist forgery and alteration; tracked links keep their targets."""

from __future__ import annotations

import uuid

import pytest

from libs.links import (
    InvalidLink,
    LinkKind,
    click_url,
    open_url,
    sign_link,
    track_links,
    unsubscribe_url,
    verify_link,
)

SECRET = "links-test-secret"
MESSAGE = uuid.UUID("12345678-1234-5678-1234-567812345678")


def test_a_token_round_trips() -> None:
    claims = verify_link(SECRET, sign_link(SECRET, LinkKind.CLICK, MESSAGE, 3), LinkKind.CLICK)
    assert (claims.kind, claims.message_id, claims.url_index) == (LinkKind.CLICK, MESSAGE, 3)
    assert verify_link(SECRET, sign_link(SECRET, LinkKind.OPEN, MESSAGE), LinkKind.OPEN).url_index is None


def test_forged_and_altered_tokens_are_refused() -> None:
    good = sign_link(SECRET, LinkKind.CLICK, MESSAGE, 0)
    body, _, mac = good.partition(".")
    other_body = sign_link(SECRET, LinkKind.CLICK, uuid.uuid4(), 0).partition(".")[0]
    index_body = sign_link(SECRET, LinkKind.CLICK, MESSAGE, 1).partition(".")[0]
    bad = [
        sign_link("other-secret", LinkKind.CLICK, MESSAGE, 0),
        f"{other_body}.{mac}",
        f"{index_body}.{mac}",
        f"{body}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        body,
        f"{body}.",
        "",
        "x" * 600,
        "%%%.%%%",
    ]
    for token in bad:
        with pytest.raises(InvalidLink):
            verify_link(SECRET, token, LinkKind.CLICK)
    with pytest.raises(InvalidLink):
        verify_link(SECRET, good, LinkKind.UNSUBSCRIBE)


def test_urls_name_their_route() -> None:
    base = "https://sdr.example.com/"
    assert unsubscribe_url(SECRET, base, MESSAGE).startswith("https://sdr.example.com/u/")
    assert open_url(SECRET, base, MESSAGE).startswith("https://sdr.example.com/o/")
    assert click_url(SECRET, base, MESSAGE, 2).startswith("https://sdr.example.com/c/")


def test_track_links_rewrites_each_url_and_returns_them_by_index() -> None:
    text = (
        "See https://acme.example/pricing, and the demo (https://acme.example/demo?x=1).\n"
        "Again: https://acme.example/pricing. Mail me at sam@acme.example"
    )
    rewritten, urls = track_links(SECRET, "https://sdr.example.com", MESSAGE, text)
    assert urls == ["https://acme.example/pricing", "https://acme.example/demo?x=1"]
    assert "acme.example/pricing" not in rewritten
    assert rewritten.count("https://sdr.example.com/c/") == 3
    assert "sam@acme.example" in rewritten
    tokens = [
        part.split("/c/")[1].split(",")[0].split(")")[0].split(".\n")[0].rstrip(".")
        for part in rewritten.split(" ")
        if "/c/" in part
    ]
    indexes = [verify_link(SECRET, t, LinkKind.CLICK).url_index for t in tokens]
    assert indexes == [0, 1, 0]
