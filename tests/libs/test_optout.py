"""Opt-out classification: every keyword in every shape, plain-language requests, and replies left alone."""

from __future__ import annotations

import pytest

from libs.optout import Intent, as_sentence, classify, reply_text

KEYWORDS = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPT OUT", "OPTOUT"]


def shapes(word: str) -> list[str]:
    return [
        word,
        word.lower(),
        word.title(),
        f"  {word}  ",
        f"{word}.",
        f"{word}!",
        f"'{word}'",
        f"{word} 🙏",
        f"\n{word}\n",
        f"{word.lower()} please",
        f"{word}, thanks",
    ]


@pytest.mark.parametrize("word", KEYWORDS)
def test_every_opt_out_keyword_in_any_case_with_spaces_and_punctuation(word: str) -> None:
    for text in shapes(word):
        found = classify(text)
        assert found.intent is Intent.OPT_OUT, text
        # The keyword is the evidence recorded with the suppression ("sms STOP").
        assert (found.matched or "").replace(" ", "") == word.replace(" ", ""), text


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("opt-out", "OPT OUT"),
        ("Opt_Out", "OPT OUT"),
        ("OPT - OUT", "OPT OUT"),
        ("stop now", "STOP"),
        ("STOP STOP", "STOP"),
        ("STOP ALL", "STOPALL"),
        ("stop-all", "STOPALL"),
        ("Stop_All!", "STOPALL"),
        ("S T O P", "STOP"),
    ],
)
def test_keyword_variants(text: str, keyword: str) -> None:
    found = classify(text)
    assert found.intent is Intent.OPT_OUT, text
    assert found.matched == keyword, text


@pytest.mark.parametrize(
    "text",
    [
        "please stop texting me",
        "Stop texting me!",
        "stop sending me messages",
        "remove me",
        "Remove me from your list",
        "take me off your list",
        "unsubscribe me please",
        "opt me out",
        "Please don't text me again",
        "do not message me",
        "no more texts please",
        "leave me alone",
        "Not interested, stop",
        "Stop messaging me, wrong person",
        "Please don\u2019t text me again",
    ],
)
def test_plain_language_opt_outs(text: str) -> None:
    found = classify(text)
    assert found.intent is Intent.OPT_OUT, text
    assert found.matched, text


@pytest.mark.parametrize(
    "text",
    [
        "stop contacting me",
        "Do not contact me again",
        "don't call, text or email me",
        "please stop all contact",
        "remove me from all your lists",
        "never reach out to me by any channel",
        "Stop calling and texting me",
        "Don\u2019t contact me",
    ],
)
def test_requests_to_stop_all_contact(text: str) -> None:
    found = classify(text)
    assert found.intent is Intent.OPT_OUT_ALL, text
    assert found.matched, text


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("START", Intent.OPT_IN),
        ("unstop", Intent.OPT_IN),
        (" Start. ", Intent.OPT_IN),
        ("HELP", Intent.HELP),
        ("help?", Intent.HELP),
        ("INFO", Intent.HELP),
    ],
)
def test_start_and_help(text: str, intent: Intent) -> None:
    found = classify(text)
    assert found.intent is intent
    assert found.matched == text.strip(" .?").upper()


@pytest.mark.parametrize(
    "text",
    [
        "Sounds good, let's talk Tuesday",
        "yes",
        "I'll stop by your booth tomorrow",
        "Please don't stop, this is useful",
        "I don't text much, call me instead",
        "What does it cost to start?",
        "Can you help me understand pricing?",
        "We stopped using spreadsheets last year",
        "Please don\u2019t stop, this is useful",
        "",
        "   ",
        None,
    ],
)
def test_replies_are_not_opt_outs(text: str | None) -> None:
    assert classify(text).intent is Intent.REPLY, text


def test_reply_text_drops_quoted_history_and_signature() -> None:
    body = "Sounds good.\n\nBest,\nLea\n-- \nLea, Globex\n\nOn Mon, Sam wrote:\n> Hi Lea\n> STOP by our booth"
    assert reply_text(body) == "Sounds good.\n\nBest,\nLea"
    assert classify(reply_text(body)).intent is Intent.REPLY


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        ("Sounds good.\n\nOn Mon, Sam wrote:\n> Reply STOP to opt out", "Sounds good."),
        ("Sounds good.\n> STOP by our booth", "Sounds good."),
        ("Sounds good.\r\nTuesday works.\r\n\r\nOn Mon, Sam wrote:\r\n> STOP", "Sounds good.\nTuesday works."),
        ("Stop.\n-----Original Message-----\nHi", "Stop."),
    ],
)
def test_reply_text_stops_at_the_first_quoted_line(body: str, kept: str) -> None:
    assert reply_text(body) == kept


def test_reply_text_is_bounded() -> None:
    assert len(reply_text("a" * 5000)) == 4000
    assert len(reply_text("a" * 5000, limit=10)) == 10


@pytest.mark.parametrize(
    ("wording", "sentence"),
    [
        ("Reply STOP and we won't write again.", "Reply STOP and we won't write again."),
        ("Reply STOP and we won't write again", "Reply STOP and we won't write again."),
        ("Not interested?  Unsubscribe here:", "Not interested? Unsubscribe here."),
        ('We will stop, "promise!"', 'We will stop, "promise!"'),
        ("Opt out at https://acme.example/optout", "Opt out at https://acme.example/optout"),
        ("Opt out at www.acme.example/optout", "Opt out at www.acme.example/optout"),
        ("See https://acme.example/optout to opt out", "See https://acme.example/optout to opt out."),
        ("Write to STOP, PO BOX", "Write to STOP, PO BOX."),
        ("Unsubscribe", "Unsubscribe."),
        ("  ", ""),
        (None, ""),
    ],
)
def test_opt_out_wording_reads_as_one_finished_sentence(wording: str | None, sentence: str) -> None:
    assert as_sentence(wording) == sentence
