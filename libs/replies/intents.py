"""What a reply means: one intent, a confidence, who decided, and the fields read out of it."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class Intent(StrEnum):
    """The one thing a reply to outreach says."""

    INTERESTED = "interested"
    MEETING_REQUEST = "meeting_request"
    QUESTION = "question"
    OBJECTION = "objection"
    NOT_NOW = "not_now"
    OUT_OF_OFFICE = "out_of_office"
    REFERRAL = "referral"
    WRONG_PERSON = "wrong_person"
    NOT_INTERESTED = "not_interested"
    UNSUBSCRIBE = "unsubscribe"
    AUTO_REPLY = "auto_reply"
    OTHER = "other"


Source = Literal["openai", "local"]


class Referral(BaseModel):
    """The person a reply points to instead of the writer."""

    model_config = ConfigDict(frozen=True)

    name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None


class ReplyFields(BaseModel):
    """What a reply's intent carries.

    ``not_before`` is the date to write again (not now) or the return date (out of office),
    resolved against the time the reply was received; ``None`` when the reply names none.
    """

    model_config = ConfigDict(frozen=True)

    not_before: date | None = None
    referral: Referral | None = None
    language: str | None = Field(default=None, max_length=8)


class ReplyClassification(BaseModel):
    """The intent of one reply, how sure the classifier is, who decided and what it read out.

    ``source`` is ``"local"`` whenever the local classifier decided, including after a model
    failure; ``fallback_reason`` then says why the model's answer was not used.
    """

    model_config = ConfigDict(frozen=True)

    intent: Intent
    confidence: float = Field(ge=0.0, le=1.0)
    source: Source
    fields: ReplyFields = Field(default_factory=ReplyFields)
    matched: str | None = Field(default=None, max_length=200, description="The rule or word that decided (local).")
    fallback_reason: str | None = Field(default=None, max_length=200)


__all__ = ["Intent", "Referral", "ReplyClassification", "ReplyFields", "Source"]
