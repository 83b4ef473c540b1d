"""Classify what a person wrote back: opt-out, opt-out of every channel, opt-in, help, or a reply.

Shared by everything that reads replies (inbound SMS, email replies). The rules:

- **Keywords** (CTIA, Twilio Advanced Opt-Out, FCC 47 CFR 64.1200(a)(10) per-se revocations):
  ``STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPT OUT`` (also ``OPTOUT``,
  ``OPT-OUT``) are opt-outs when the message is the keyword alone, in any case, with
  surrounding spaces, punctuation or emoji, optionally with a courtesy word ("stop please").
  ``START, UNSTOP`` re-subscribe; ``HELP, INFO`` ask for help. ``YES`` is *not* an opt-in
  here: in a sales conversation it is a reply.
- **Plain language** ("please stop texting me", "remove me", "take me off your list") is an
  opt-out too: the FCC asks for any reasonable way of saying it. When the wording covers every
  channel ("stop contacting me", "don't call, text or email me", "remove me from all your
  lists") it is an opt-out of *all* contact.
- Anything else is a reply.

Email replies quote the original message; :func:`reply_text` keeps only what the person wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Intent(StrEnum):
    """What a reply asks for."""

    OPT_OUT = "opt_out"
    OPT_OUT_ALL = "opt_out_all"
    OPT_IN = "opt_in"
    HELP = "help"
    REPLY = "reply"


@dataclass(frozen=True, slots=True)
class Classification:
    """The intent of a reply and the keyword or phrase that decided it."""

    intent: Intent
    matched: str | None = None

    @property
    def is_opt_out(self) -> bool:
        """Whether the person asked not to be contacted (on this channel or on every one)."""
        return self.intent in (Intent.OPT_OUT, Intent.OPT_OUT_ALL)


OPT_OUT_KEYWORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPT OUT", "OPTOUT")
OPT_IN_KEYWORDS = ("START", "UNSTOP")
HELP_KEYWORDS = ("HELP", "INFO")
_COURTESY = frozenset({"PLEASE", "PLS", "PLZ", "NOW", "THANKS", "THANK", "YOU", "THX", "OK", "OKAY", "ME"})

_CHANNEL_WORDS = (
    r"(?:texts?|texting|txt|sms|messages?|messaging|msgs?|calls?|calling|phone|ringing|"
    r"e-?mails?|e-?mailing|voicemails?)"
)
_VERBS = r"(?:contact|call|text|sms|e-?mail|message|ring|phone)"
_OPT_OUT_PHRASES: tuple[tuple[str, str], ...] = (
    ("stop texting", rf"\bstop\s+(?:sending\s+(?:me\s+)?)?{_CHANNEL_WORDS}"),
    ("stop sending", r"\bstop\s+sending\b"),
    ("stop messaging", r"\bstop\s+(?:messaging|texting|calling|emailing|e-mailing|bothering|spamming)\b"),
    ("remove me", r"\bremove\s+(?:me|my\s+(?:number|name|email|e-mail|address|details))\b"),
    ("take me off", r"\btake\s+(?:me|my\s+(?:number|name|email|e-mail))\s+off\b"),
    ("unsubscribe me", r"\bunsubscribe\s+me\b"),
    ("opt me out", r"\b(?:opt|count)\s+me\s+out\b"),
    (
        "do not contact",
        rf"\b(?:do\s+not|don'?t|dont|never)\s+(?:ever\s+)?{_VERBS}(?:\s*,?\s*(?:or|and|nor)?\s*{_VERBS})*\s+(?:me|us)\b",
    ),
    ("no more", rf"\bno\s+more\s+{_CHANNEL_WORDS}"),
    ("leave me alone", r"\bleave\s+me\s+alone\b"),
    ("not interested stop", r"\bnot\s+interested\b.*\bstop\b"),
    ("lose my number", r"\blose\s+my\s+(?:number|email)\b"),
    ("wrong number stop", r"\bwrong\s+number\b.*\bstop\b"),
)
_ALL_CONTACT_PHRASES: tuple[tuple[str, str], ...] = (
    ("stop contacting", r"\bstop\s+(?:all\s+)?(?:contacting|reaching\s+out)\b"),
    ("do not contact", r"\b(?:do\s+not|don'?t|dont|never)\s+(?:ever\s+)?(?:contact|reach\s+out\s+to)\s+(?:me|us)\b"),
    ("all contact", r"\b(?:all|any|every)\s+(?:forms?\s+of\s+)?(?:contact|communications?|channels?|outreach)\b"),
    (
        "all lists",
        r"\b(?:remove|take)\s+me\b.*\b(?:all|every)\s+(?:(?:of\s+)?your\s+)?(?:lists?|databases?|mailing\s+lists?)\b",
    ),
    ("every channel", r"\b(?:by|on|via)\s+any\s+(?:channel|means|way)\b"),
)
_CHANNEL_FAMILIES = {
    "text": r"\b(?:texts?|texting|txt|sms|messag\w*)\b",
    "call": r"\b(?:calls?|calling|phone|ringing|voicemails?)\b",
    "email": r"\be-?mail\w*\b",
}
_NEGATED_REQUEST = re.compile(r"\b(?:don'?t|do\s+not|never)\s+stop\b")

_QUOTE_HEADER = re.compile(
    r"^(?:On\s.+wrote:|Le\s.+a\s+écrit\s*:|Am\s.+schrieb\s.+:|-{2,}\s*Original Message\s*-{2,}|From:\s.+|_{5,})\s*$",
    re.IGNORECASE,
)


def normalize(text: str) -> str:
    """Upper-case ``text``, turn separators into single spaces, strip non-alphanumerics at both ends."""
    words = re.sub(r"[\s_\-]+", " ", text.upper()).strip()
    return re.sub(r"^[^0-9A-Z]+|[^0-9A-Z]+$", "", words)


def _keyword(text: str) -> Classification | None:
    core = normalize(text)
    if not core:
        return None
    compact = core.replace(" ", "")
    for keyword in OPT_OUT_KEYWORDS:
        if core == keyword or compact == keyword.replace(" ", ""):
            return Classification(Intent.OPT_OUT, keyword)
    for keywords, intent in ((OPT_IN_KEYWORDS, Intent.OPT_IN), (HELP_KEYWORDS, Intent.HELP)):
        if core in keywords:
            return Classification(intent, core)
    # A keyword with only courtesy words around it ("stop please", "STOP now thanks").
    tokens = re.sub(r"[^0-9A-Z ]+", " ", core).split()
    found = [t for t in tokens if t not in _COURTESY]
    if found and len(set(found)) == 1 and found[0] in OPT_OUT_KEYWORDS:
        return Classification(Intent.OPT_OUT, found[0])
    if len(found) == 2 and " ".join(found) == "OPT OUT":
        return Classification(Intent.OPT_OUT, "OPT OUT")
    return None


def classify(text: str | None) -> Classification:
    """Say what ``text`` (an SMS body or the new part of an email reply) asks for."""
    if not text or not text.strip():
        return Classification(Intent.REPLY)
    found = _keyword(text)
    if found is not None:
        return found
    lowered = " ".join(text.lower().replace("\u2019", "'").split())
    if _NEGATED_REQUEST.search(lowered):
        return Classification(Intent.REPLY)
    opt_out = next((name for name, pattern in _OPT_OUT_PHRASES if re.search(pattern, lowered)), None)
    all_contact = next((name for name, pattern in _ALL_CONTACT_PHRASES if re.search(pattern, lowered)), None)
    if all_contact is not None:
        return Classification(Intent.OPT_OUT_ALL, all_contact)
    if opt_out is not None:
        families = [name for name, pattern in _CHANNEL_FAMILIES.items() if re.search(pattern, lowered)]
        if len(families) >= 2:
            return Classification(Intent.OPT_OUT_ALL, opt_out)
        return Classification(Intent.OPT_OUT, opt_out)
    return Classification(Intent.REPLY)


_TERMINAL = ".!?\u2026"
_CLOSERS = "\"')]\u00bb\u201d\u2019"


def as_sentence(text: str | None) -> str:
    """Return opt-out wording as one finished sentence: spaces collapsed, a dangling ``:`` or ``,`` dropped,
    a period added when it ends without one ("" stays "").

    Wording that ends with a link is left unpunctuated, so no period is glued to the URL.
    """
    words = " ".join((text or "").split()).rstrip(" :;,-\u2013\u2014")
    if not words:
        return ""
    last = words.rsplit(" ", 1)[-1].lower()
    tail = words.rstrip(_CLOSERS)[-1:]
    if (tail and tail in _TERMINAL) or "://" in last or last.startswith("www."):
        return words
    return f"{words}."


def reply_text(body: str, *, limit: int = 4000) -> str:
    """Return what the person wrote in an email reply: quoted lines and the quoted original dropped."""
    kept: list[str] = []
    for line in body.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if stripped.startswith(">") or _QUOTE_HEADER.match(stripped):
            break
        if stripped == "--" or stripped == "-- ":
            break
        kept.append(line)
    return "\n".join(kept).strip()[:limit]


__all__ = [
    "HELP_KEYWORDS",
    "OPT_IN_KEYWORDS",
    "OPT_OUT_KEYWORDS",
    "Classification",
    "Intent",
    "as_sentence",
    "classify",
    "normalize",
    "reply_text",
]
