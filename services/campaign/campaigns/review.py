"""Review mode's HTTP side: a campaign's review queue, and approving or rejecting what waits in it.

A campaign in review mode has the worker put written messages aside (``awaiting_review``). Here
a member reads them, approves one (its text kept or edited) or many, or rejects one with a
reason. An approval checks the text that will go out again, as the worker's guardrails check
what a writer produced (no template placeholders left, links only to the brand's own site, none
of the brand's forbidden claims, an email's subject on one line): a refused text answers 422
naming the field and the rule, and the message keeps waiting. An approved message is ``queued``
and due at once (the ticker hands it to the worker, whose gate decides on it again and whose
conditional claim sends exactly the approved text once); a rejected one is ``skipped`` and its
lead's sequence moves on. A message that is no longer awaiting review answers 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Self

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK
from pydantic import BaseModel, Field, model_validator

from libs.db.base import utcnow
from libs.errors import Conflict, Invalid
from libs.ledger import review as ledger_review
from libs.ledger.resolution import MAX_BATCH
from libs.message_rules import BODY_MAX, SUBJECT_MAX, brand_domain, breaches
from libs.openapi import problems
from libs.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, make_page
from libs.scopes import Area, scope_area
from libs.security import Principal, Role, requires
from services.campaign.campaigns.controllers import DEPENDENCIES
from services.campaign.campaigns.errors import MessageNotFound
from services.campaign.campaigns.schemas import MessageRead, Strict
from services.campaign.campaigns.service import CampaignService

NOTE_MAX = 1000

_SAYS = {
    "empty": "empty",
    "control_characters": "control characters",
    "placeholder_left": "a template placeholder is left",
    "foreign_link": "links to {detail}",
    "forbidden_claim": "makes a forbidden claim: {detail}",
}
"""What an error says about each rule of ``libs.message_rules``."""


class NotAwaitingReview(Conflict):
    """The message is not awaiting review (approved, rejected, expired, or never put aside)."""

    title = "Not awaiting review"


class ReviewMessage(MessageRead):
    """A message with its review: deadline, and who decided, when and why."""

    review_deadline_at: datetime | None
    reviewed_by: uuid.UUID | None
    reviewed_at: datetime | None
    review_note: str | None


class Approve(Strict):
    """An approval; ``subject`` and ``body`` replace the written text (omitted: it goes out as written)."""

    subject: str | None = Field(default=None, min_length=1, max_length=SUBJECT_MAX)
    body: str | None = Field(default=None, min_length=1, max_length=BODY_MAX)
    note: str | None = Field(default=None, max_length=NOTE_MAX)


class Reject(Strict):
    """A rejection: the message is skipped, never sent."""

    reason: str = Field(min_length=1, max_length=NOTE_MAX)


class BulkApprove(Strict):
    """Approve the listed messages of the campaign, or ``all`` of those awaiting review, as written."""

    message_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=MAX_BATCH)
    all: bool = False
    note: str | None = Field(default=None, max_length=NOTE_MAX)

    @model_validator(mode="after")
    def _one_choice(self) -> Self:
        if (self.message_ids is None) == (not self.all):
            raise ValueError("give either message_ids or all: true")
        return self


class Refused(BaseModel):
    """A message a bulk approval left as it was, and why."""

    message_id: uuid.UUID
    status: str | None
    errors: list[dict[str, str]]


class BulkResult(BaseModel):
    """What a bulk approval did."""

    approved: list[uuid.UUID]
    refused: list[Refused]


def content_errors(
    channel: str, subject: str | None, body: str | None, *, website: str | None, claims: Iterable[str]
) -> list[dict[str, str]]:
    """Why this text may not go out: one error per field and rule of ``libs.message_rules``; empty when it may."""
    site = brand_domain(website)
    claims = list(claims)
    fields = [("subject", subject), ("body", body)] if channel == "email" else [("body", body)]
    errors: list[dict[str, str]] = []
    for name, text in fields:
        if name == "subject" and text and any(c in text for c in "\r\n"):
            errors.append({"field": name, "message": "the subject must be one line", "reason": "subject_line_break"})
        for breach in breaches(text, allowed_domain=site, forbidden_claims=claims):
            message = _SAYS[breach.reason].format(detail=breach.detail)
            errors.append({"field": name, "message": message, "reason": breach.reason})
    return errors


def _errors_of(row: Any, subject: str | None, body: str | None) -> list[dict[str, str]]:
    return content_errors(row.channel, subject, body, website=row.website, claims=row.forbidden_claims or [])


def _final(row: Any, data: Approve) -> tuple[str | None, str]:
    """The text that goes out: the written text with the approval's edits."""
    if data.subject is not None and row.channel != "email":
        raise Invalid(errors=[{"field": "subject", "message": f"a {row.channel} message has no subject"}])
    subject = data.subject if data.subject is not None else row.subject
    return (subject if row.channel == "email" else None), data.body if data.body is not None else (row.body or "")


class ReviewService:
    """Decisions on the messages awaiting review of the caller's organization."""

    def __init__(self, campaigns: CampaignService, principal: Principal) -> None:
        self.campaigns = campaigns
        self.repo = campaigns.repos.messages
        self.principal = principal

    async def _row(self, message_id: uuid.UUID) -> Any:
        rows = await self.repo.for_review([message_id])
        if not rows:
            raise MessageNotFound("No such message.")
        row = rows[0]
        if row.status != "awaiting_review":
            raise NotAwaitingReview(f"The message is {row.status}, not awaiting review.")
        return row

    async def approve(self, message_id: uuid.UUID, data: Approve) -> None:
        """Approve one message, its text checked again (and edited when asked)."""
        row = await self._row(message_id)
        subject, body = _final(row, data)
        errors = _errors_of(row, subject, body)
        if errors:
            raise Invalid("The text may not be sent as it is.", errors=errors)
        approval = ledger_review.Approval(row.id, subject, body)
        await ledger_review.approve(
            self.repo.session, [approval], by=self.principal.user_id, note=data.note, now=utcnow()
        )

    async def reject(self, message_id: uuid.UUID, data: Reject) -> None:
        """Skip one message for good; its lead's sequence moves on."""
        row = await self._row(message_id)
        await ledger_review.reject(
            self.repo.session,
            [row.id],
            reason=ledger_review.REJECTED,
            note=data.reason,
            by=self.principal.user_id,
            now=utcnow(),
        )

    async def approve_many(self, campaign_id: uuid.UUID, data: BulkApprove) -> BulkResult:
        """Approve many of a campaign's messages as written; those whose text is refused keep waiting."""
        campaign = await self.campaigns.get(campaign_id)
        ids = data.message_ids or await self.repo.awaiting_ids(campaign.id, MAX_BATCH)
        ids = list(dict.fromkeys(ids))
        rows = {r.id: r for r in await self.repo.for_review(ids)}
        refused: list[Refused] = []
        approvals: list[ledger_review.Approval] = []
        for message_id in ids:
            row = rows.get(message_id)
            if row is None or row.campaign_id != campaign.id:
                refused.append(Refused(message_id=message_id, status=None, errors=[_NOT_HERE]))
            elif row.status != "awaiting_review":
                refused.append(Refused(message_id=message_id, status=row.status, errors=[_NOT_AWAITING]))
            elif errors := _errors_of(row, row.subject if row.channel == "email" else None, row.body):
                refused.append(Refused(message_id=message_id, status=row.status, errors=errors))
            else:
                approvals.append(ledger_review.Approval(row.id, row.subject, row.body or ""))
        moved = await ledger_review.approve(
            self.repo.session, approvals, by=self.principal.user_id, note=data.note, now=utcnow()
        )
        return BulkResult(approved=[i for i, _ in moved], refused=refused)

    async def read(self, message_id: uuid.UUID) -> ReviewMessage:
        message = await self.repo.get(message_id)
        if message is None:
            raise MessageNotFound("No such message.")
        return ReviewMessage.model_validate(message)

    async def queue(self, campaign_id: uuid.UUID, limit: int, cursor: str | None) -> Page[ReviewMessage]:
        campaign = await self.campaigns.get(campaign_id)
        rows = await self.repo.awaiting_review(campaign.id, limit=limit, cursor=cursor)
        return make_page(rows, limit, ReviewMessage.model_validate)


_NOT_HERE = {"field": "message_ids", "message": "no such message in this campaign", "reason": "not_found"}
_NOT_AWAITING = {"field": "message_ids", "message": "not awaiting review", "reason": "not_awaiting_review"}


def _service(campaigns: CampaignService, principal: Principal) -> ReviewService:
    return ReviewService(campaigns, principal)


class CampaignReviewController(Controller):
    """A campaign's review queue."""

    path = "/api/campaigns/{campaign_id:uuid}/review"
    tags = ["review"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.CAMPAIGNS)
    dependencies = DEPENDENCIES

    @get("/", operation_id="ListReviewQueue")
    async def queue(
        self,
        campaign_id: FromPath[uuid.UUID],
        campaigns: NamedDependency[CampaignService],
        principal: NamedDependency[Principal],
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
    ) -> Page[ReviewMessage]:
        """The campaign's messages awaiting review, newest first, with the text that would go out."""
        return await _service(campaigns, principal).queue(campaign_id, limit, cursor)

    @post(
        "/approve",
        operation_id="ApproveReviewQueue",
        status_code=HTTP_200_OK,
        guards=[requires(Role.MEMBER)],
        responses=problems(404),
    )
    async def approve_many(
        self,
        campaign_id: FromPath[uuid.UUID],
        data: JSONBody[BulkApprove],
        campaigns: NamedDependency[CampaignService],
        principal: NamedDependency[Principal],
    ) -> BulkResult:
        """Approve the listed messages (or all awaiting review) as written; a refused text keeps waiting."""
        return await _service(campaigns, principal).approve_many(campaign_id, data)


class MessageReviewController(Controller):
    """Approving or rejecting one message awaiting review."""

    path = "/api/messages/{message_id:uuid}"
    tags = ["review"]
    guards = [requires(Role.MEMBER)]
    opt = scope_area(Area.CAMPAIGNS)
    dependencies = DEPENDENCIES

    @post(
        "/approve",
        operation_id="ApproveMessage",
        status_code=HTTP_200_OK,
        responses=problems(404, 409, s409="The message is not awaiting review."),
    )
    async def approve(
        self,
        message_id: FromPath[uuid.UUID],
        campaigns: NamedDependency[CampaignService],
        principal: NamedDependency[Principal],
        data: JSONBody[Approve | None] = None,
    ) -> ReviewMessage:
        """Approve the message (its subject and body optionally edited): it is sent once, with this text."""
        service = _service(campaigns, principal)
        await service.approve(message_id, data or Approve())
        return await service.read(message_id)

    @post(
        "/reject",
        operation_id="RejectMessage",
        status_code=HTTP_200_OK,
        responses=problems(404, 409, s409="The message is not awaiting review."),
    )
    async def reject(
        self,
        message_id: FromPath[uuid.UUID],
        data: JSONBody[Reject],
        campaigns: NamedDependency[CampaignService],
        principal: NamedDependency[Principal],
    ) -> ReviewMessage:
        """Reject the message with a reason: it is skipped, never sent, and the lead's sequence moves on."""
        service = _service(campaigns, principal)
        await service.reject(message_id, data)
        return await service.read(message_id)


REVIEW_CONTROLLERS: Sequence[type[Controller]] = [CampaignReviewController, MessageReviewController]
