"""What a provider call came to, classified for the exactly-once ledger."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """How a hand-off to a provider ended.

    ``RETRY`` only when the provider certainly did not accept the message (nothing was
    handed off), ``UNKNOWN`` when it may have: those are never sent again automatically.
    """

    SENT = "sent"
    RETRY = "retry"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SendResult:
    """The classified result of one send: provider id when sent, reason otherwise."""

    outcome: Outcome
    provider_id: str | None = None
    code: str | None = None
    detail: str | None = None

    @classmethod
    def sent(cls, provider_id: str) -> SendResult:
        """The provider accepted the message under ``provider_id``."""
        return cls(Outcome.SENT, provider_id=provider_id)

    @classmethod
    def retry(cls, code: str, detail: str) -> SendResult:
        """Nothing was handed off; trying again later is safe."""
        return cls(Outcome.RETRY, code=code, detail=detail[:1000])

    @classmethod
    def permanent(cls, code: str, detail: str) -> SendResult:
        """The provider refused the message for good."""
        return cls(Outcome.PERMANENT, code=code, detail=detail[:1000])

    @classmethod
    def unknown(cls, code: str, detail: str) -> SendResult:
        """The provider may or may not have accepted the message."""
        return cls(Outcome.UNKNOWN, code=code, detail=detail[:1000])


def clean_header(value: str | None, *, limit: int = 998) -> str:
    """Strip CR, LF and NUL (header injection) and surrounding space from a header input."""
    if not value:
        return ""
    return value.replace("\r", " ").replace("\n", " ").replace("\x00", "").strip()[:limit]
