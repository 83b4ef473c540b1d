"""The brand's email signature: the writer puts it in the body exactly once, whoever wrote the body."""

from __future__ import annotations

import pytest

from services.worker.personalize import Personalizer, Request, make_openai_client
from tests.support.providers import ProviderServer, completion, invalid_json

SIGNATURE = "Sam Carter\nHead of Growth, Acme Analytics"
BRAND = {
    "name": "Acme Analytics",
    "website": "https://acme.example",
    "value_proposition": "We cut reporting time in half.",
    "email_signature": SIGNATURE,
}
LEAD = {"first_name": "Ada", "company": "Engines Ltd"}
SIGNED = {
    "subject": "Idea for {{ lead.company }}",
    "body": "Hi {{ lead.first_name }},\n\nA note.\n\n{{ brand.email_signature }}",
}
UNSIGNED = {"subject": "Idea for {{ lead.company }}", "body": "Hi {{ lead.first_name }},\n\nA note."}


def request(templates: dict[str, str], channel: str = "email") -> Request:
    return Request(channel=channel, brand=BRAND, lead=LEAD, templates=templates)


def openai(providers: ProviderServer) -> Personalizer:
    client = make_openai_client("sk-test", timeout=2, max_retries=0, base_url=providers.url + "/v1")
    return Personalizer(client, model="gpt-4o-mini")


def test_a_template_that_uses_the_signature_gets_it_once() -> None:
    draft = Personalizer(None, model="m").write(request(SIGNED))
    assert draft.content["body"] == f"Hi Ada,\n\nA note.\n\n{SIGNATURE}"
    assert draft.content["body"].count("Head of Growth") == 1


def test_a_template_without_the_signature_gets_it_appended() -> None:
    draft = Personalizer(None, model="m").write(request(UNSIGNED))
    assert draft.content["body"] == f"Hi Ada,\n\nA note.\n\n{SIGNATURE}"


def test_the_signature_placed_mid_body_is_not_repeated_at_the_end() -> None:
    templates = {**UNSIGNED, "body": "Hi {{ first_name }},\n\n{{ brand.email_signature }} here.\n\nTalk soon?"}
    body = Personalizer(None, model="m").write(request(templates)).content["body"]
    assert body.count("Head of Growth") == 1
    assert body.endswith("Talk soon?")


def test_no_signature_configured_leaves_the_body_alone() -> None:
    brand = {**BRAND, "email_signature": None}
    draft = Personalizer(None, model="m").write(Request(channel="email", brand=brand, lead=LEAD, templates=UNSIGNED))
    assert draft.content["body"] == "Hi Ada,\n\nA note."


def test_texts_never_get_the_email_signature() -> None:
    draft = Personalizer(None, model="m").write(request({"sms": "Hi {{ first_name }}. Reply STOP to opt out."}, "sms"))
    assert "Head of Growth" not in draft.content["text"]


@pytest.mark.parametrize(
    "body",
    [
        "Hi Ada,\n\nFaster reports for Engines Ltd.",
        # The model kept the signature the draft carried (line breaks rewrapped).
        "Hi Ada,\n\nFaster reports for Engines Ltd.\n\nSam Carter\r\nHead of Growth,  Acme Analytics",
    ],
)
def test_the_model_path_signs_once_whether_or_not_the_model_kept_the_signature(
    providers: ProviderServer, body: str
) -> None:
    providers.script("chat", completion({"subject": "Faster reports", "body": body}))
    draft = openai(providers).write(request(SIGNED))
    assert draft.source == "openai"
    assert draft.content["body"].count("Head of Growth") == 1
    assert draft.content["body"].startswith("Hi Ada,\n\nFaster reports for Engines Ltd.")
    # The model is asked for a body without signature: its draft does not carry it twice either.
    [sent] = providers.received("chat")
    assert sent.json["messages"][1]["content"].count("Head of Growth") <= 1


def test_the_fallback_signs_once(providers: ProviderServer) -> None:
    providers.script("chat", invalid_json())
    draft = openai(providers).write(request(SIGNED))
    assert draft.source == "fallback"
    assert draft.content["body"] == f"Hi Ada,\n\nA note.\n\n{SIGNATURE}"
