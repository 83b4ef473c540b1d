"""The rules every message's text must keep before it may go out, whoever wrote it.

The worker applies them to what the model (or the local writer) wrote
(``services.worker.personalize.validate``), and the review queue applies them again to what a
person approved, edited or not (``services.campaign.campaigns.review``): one set of rules, so an
approval can never let through what the worker would have refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

SUBJECT_MAX = 120
BODY_MAX = 5000

_PLACEHOLDER = re.compile(
    r"\{\{|\}\}|\{%|%\}|\{\s*[A-Za-z_][\w.]*\s*\}|\[\s*(?:first|last|company|name|title)[\w ]*\]", re.I
)
_URL = re.compile(
    r"(?:https?://|www\.)[^\s<>\"')\]]+|\b(?:[a-z0-9-]+\.)+(?:com|net|org|io|co|ai|app|dev|biz|info|us|uk|ly)\b(?:/[^\s<>\"')\]]*)?",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Breach:
    """One rule a text breaks: a stable ``reason`` code and what in the text breaks it."""

    reason: str
    detail: str = ""


def host_of(url: str) -> str:
    """The host a link points at, lower-cased and without ``www.``."""
    if not re.match(r"https?://", url, re.I):
        url = "http://" + url
    return (urlsplit(url).hostname or "").lower().removeprefix("www.")


def brand_domain(website: str | None) -> str | None:
    """The registrable host of the brand's website, the only place links may point."""
    return host_of(website) or None if website else None


def breaches(text: str | None, *, allowed_domain: str | None, forbidden_claims: Iterable[str]) -> Iterator[Breach]:
    """Every rule ``text`` breaks, in the order the worker checks them (empty text breaks only ``empty``)."""
    if not text or not text.strip():
        yield Breach("empty")
        return
    if "\x00" in text:
        yield Breach("control_characters")
    if _PLACEHOLDER.search(text):
        yield Breach("placeholder_left")
    for match in _URL.finditer(text):
        host = host_of(match.group(0).rstrip(".,;:!?"))
        if not allowed_domain or not (host == allowed_domain or host.endswith("." + allowed_domain)):
            yield Breach("foreign_link", host)
            break
    lowered = text.lower()
    for claim in forbidden_claims:
        if claim and claim.strip() and claim.strip().lower() in lowered:
            yield Breach("forbidden_claim", claim.strip())
