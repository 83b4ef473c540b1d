"""Request and response bodies of the inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

INTENT = (
    "One of the reply classifier's intents (`interested`, `meeting_request`, `question`, `objection`, "
    "`not_now`, `out_of_office`, `referral`, `wrong_person`, `not_interested`, `unsubscribe`, `auto_reply`, "
    "`other`) or, for a text or email not classified, what its handling made of it (`reply`, `opt_out`, "
    "`opt_out_all`, `opt_in`, `help`, `auto_reply`)."
)


class Read(BaseModel):
    """A response body built from rows."""

    model_config = ConfigDict(from_attributes=True)


class ConversationLead(Read):
    """Who the conversation is with (NULL fields once the lead is erased)."""

    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    company: str | None


class ConversationRead(Read):
    """One lead's conversation: its last activity, whether a text or email in it is unread, its assignment."""

    lead_id: uuid.UUID
    lead: ConversationLead
    last_activity_at: datetime | None = Field(description="The latest message out or text/email in (null: none yet).")
    last_inbound_at: datetime | None = Field(description="The latest text or email from the lead (null: none yet).")
    read_at: datetime | None = Field(description="When the conversation was last marked read (null: never).")
    unread: bool = Field(description="Whether the lead wrote after the conversation was last read.")
    intent: str | None = Field(description=f"What the lead's latest text or email meant, if known: {INTENT}")
    assigned_member_id: uuid.UUID | None = Field(description="The member (user id) it is assigned to, if any.")


class ThreadItem(Read):
    """One message of a thread: a message out (ledger row) or a text/email in (inbound event)."""

    id: uuid.UUID = Field(description="The message's id (out) or the inbound event's id (in).")
    direction: Literal["out", "in"]
    channel: Literal["email", "sms", "voicemail"]
    at: datetime = Field(description="When it was handed to the provider (out) or received (in).")
    campaign_id: uuid.UUID | None
    message_id: uuid.UUID | None = Field(description="The ledger message it is, or the one it answers.")
    status: str = Field(description="The message's ledger status (out) or the event's processing status (in).")
    subject: str | None
    body: str | None
    intent: str | None = Field(description=f"What a text/email in meant (null for messages out): {INTENT}")


class AssignmentUpdate(BaseModel):
    """Whom the conversation is assigned to: a member's user id, or null for nobody."""

    model_config = ConfigDict(extra="forbid")

    member_id: uuid.UUID | None
