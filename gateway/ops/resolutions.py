"""Operators resolve ``unknown`` messages: delivered, resend, or failed (one message or a batch).

The decision is :mod:`libs.ledger`'s, the same statements ``sdr resolve`` runs; these routes
parse, run it in one system transaction, and announce the result after the commit. Like every
``/api/ops`` route they are operator-only, and a browser session needs the CSRF checks.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import anyio.to_thread
import structlog
from litestar import post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from libs import ledger
from libs.errors import PROBLEM_JSON, Conflict, NotFound
from libs.security import Principal

log = structlog.get_logger("gateway.ops")

OutcomeName = Literal["delivered", "resend", "failed"]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=ledger.NOTE_MAX)]
_OUTCOME_HELP = (
    "`delivered`: the provider has it; the message becomes `sent` and the enrollment moves on. "
    "`resend`: it never arrived; the message is queued and sent once more (a message is resent at most once). "
    "`failed`: it never arrived and must not be retried; the message becomes `failed`, the enrollment moves on."
)


class ResolveRequest(BaseModel):
    """An operator's decision about one ``unknown`` message."""

    model_config = ConfigDict(extra="forbid")

    outcome: OutcomeName = Field(description=_OUTCOME_HELP)
    note: Note | None = Field(
        default=None, description="Why (e.g. what the provider's log showed); kept in the message's event."
    )


class BatchResolveRequest(ResolveRequest):
    """One decision about many ``unknown`` messages."""

    message_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=ledger.MAX_BATCH, description="The messages, at most 500 (duplicates count once)."
    )


class Resolution(BaseModel):
    """What became of one message."""

    message_id: uuid.UUID
    resolved: bool = Field(description="False when the message was left as it was (see `reason`).")
    outcome: OutcomeName
    status: str | None = Field(description="The message's status now (null when there is no such message).")
    reason: (
        Literal[
            "not_found",
            "not_unknown",
            "already_resent",
            "enrollment_stopped",
            "campaign_finished",
            "sequence_finished",
        ]
        | None
    ) = Field(default=None, description="Why the message was not resolved.")
    detail: str | None = Field(default=None, description="The reason in words.")
    enrollment: Literal["advanced", "completed", "rewound", "unchanged"] | None = Field(
        default=None,
        description="What the decision did to the lead's enrollment: moved on to the next step, finished the "
        "sequence, put back on this step for the resend, or nothing (it had moved on already).",
    )
    event_id: uuid.UUID | None = Field(default=None, description="The message event that records the decision.")


class BatchResolution(BaseModel):
    """A batch decision's results, one per message in the order given."""

    outcome: OutcomeName
    decided_at: datetime
    operator_id: uuid.UUID
    operator_email: str | None
    resolved: int
    refused: int
    results: list[Resolution]


class ResolvedMessage(Resolution):
    """A resolved message, with who decided and when."""

    decided_at: datetime
    operator_id: uuid.UUID
    operator_email: str | None


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=None, description=description, media_type=PROBLEM_JSON)


def _read(result: ledger.Resolution) -> Resolution:
    return Resolution(
        message_id=result.message_id,
        resolved=result.resolved,
        outcome=result.outcome.value,
        status=result.status,
        reason=result.reason.value if result.reason else None,
        detail=result.detail,
        enrollment=result.enrollment,
        event_id=result.event_id,
    )


async def _decide(
    state: State, principal: Principal, message_ids: list[uuid.UUID], outcome: str, note: str | None
) -> ledger.Batch:
    async with state.db.system() as session:
        operator = ledger.Operator(principal.user_id, await ledger.operator_email(session, principal.user_id))
        batch = await ledger.resolve(session, message_ids, ledger.Outcome(outcome), operator, note=note)
    await anyio.to_thread.run_sync(ledger.announce, state.redis, batch)
    return batch


@post(
    "/api/ops/messages/{message_id:uuid}/resolve",
    operation_id="ResolveUnknownMessage",
    tags=["ops"],
    status_code=200,
    summary="Resolve an unknown message",
    responses={
        404: _problem("No such message."),
        409: _problem(
            "The message is not `unknown` (already resolved, concurrently resolved, or never unknown), or a "
            "resend is not possible; `reason` says which."
        ),
    },
)
async def resolve_message(
    state: State, message_id: FromPath[uuid.UUID], data: JSONBody[ResolveRequest], principal: NamedDependency[Principal]
) -> ResolvedMessage:
    """Mark one `unknown` message delivered, resend it once, or mark it failed; the decision is kept in its events."""
    batch = await _decide(state, principal, [message_id], data.outcome, data.note)
    [result] = batch.results
    if not result.resolved:
        if result.reason is ledger.Refusal.NOT_FOUND:
            raise NotFound(result.detail)
        raise Conflict(result.detail, reason=str(result.reason), message_status=result.status)
    return ResolvedMessage(
        **_read(result).model_dump(),
        decided_at=batch.decided_at,
        operator_id=batch.operator.user_id,
        operator_email=batch.operator.email,
    )


@post(
    "/api/ops/messages/resolve",
    operation_id="ResolveUnknownMessages",
    tags=["ops"],
    status_code=200,
    summary="Resolve many unknown messages",
)
async def resolve_messages(
    state: State, data: JSONBody[BatchResolveRequest], principal: NamedDependency[Principal]
) -> BatchResolution:
    """One decision for up to 500 `unknown` messages; each gets a result: resolved, or why not."""
    batch = await _decide(state, principal, data.message_ids, data.outcome, data.note)
    return BatchResolution(
        outcome=data.outcome,
        decided_at=batch.decided_at,
        operator_id=batch.operator.user_id,
        operator_email=batch.operator.email,
        resolved=batch.resolved,
        refused=batch.refused,
        results=[_read(r) for r in batch.results],
    )


RESOLUTION_HANDLERS = [resolve_message, resolve_messages]
