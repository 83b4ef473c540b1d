"""Every statement that changes a message's status; conditional updates only.

One ``messages`` row per (enrollment, step). Each statement moves a message only from the
states named in its ``WHERE status IN (...)``: the statement that wins is the transition, any
other finds no row. The sets those lists spell are :mod:`libs.ledger.states`'.

- the ticker: :data:`DISPATCH_DUE` (a due retry or hold back to ``queued``), :data:`LOST_CLAIMS`
  (a claim whose holder died becomes ``unknown``, never resent);
- the worker: :data:`SETTLE` (the gate's skip, hold or failure, the enrollment advanced or
  stopped) and :data:`STEP` (record the previous hand-off's outcome and advance its enrollment,
  then claim the next message to ``sending``);
- the inbound side: :func:`advance` (a provider's callback, forward only) and :func:`skip_unsent`
  (the unsent messages of enrollments it stopped);
- review mode: :data:`REVIEW` (the worker puts a written message aside for a person),
  :data:`APPROVE` (approved, back to ``queued`` and due) and :data:`REJECT` (rejected or past its
  deadline: ``skipped``, the enrollment moved on);
- an erasure: :data:`TOMBSTONE` (unsent messages skipped, every message's text nulled);
- operators: :data:`libs.ledger.resolution.RESOLVE`.

``SETTLE``, ``STEP``, ``REJECT`` and ``RESOLVE`` move the enrollment on with the one CTE body
:func:`advance_enrollments` spells.

While a row is ``sending`` its ``next_attempt_at`` is the claim's lease, which the claiming
process renews while it lives: past it, the claimer is presumed dead and the row becomes
``unknown`` (never resent). A late record of the real outcome by a claimer that was only slow
still wins (the record accepts ``unknown`` of the same attempt).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from libs.db.models.campaign import Message, MessageStatus
from libs.ledger.states import UNSENT, advance_from

MESSAGES: sa.Table = Message.__table__  # type: ignore[attr-defined]


def advance_enrollments(source: str, alias: str, *, position: str, due: str, action: str) -> str:
    """The ``UPDATE enrollments`` that moves each enrollment past the step its message just settled on.

    The one spelling of "the enrollment moves on" that the worker's :data:`SETTLE` and
    :data:`STEP` and the operators' ``RESOLVE`` (:mod:`libs.ledger.resolution`) share, as a CTE
    body: ``source`` is the CTE of the settled messages (``alias`` names it; it carries
    ``enrollment_id``), and ``position``, ``due`` and ``action`` are SQL expressions for the
    message's step position, the next step's due time and ``advance`` or ``complete`` (any other
    action leaves the enrollment as it is; ``complete`` ends it). Only an enrollment still on that
    step and live (``active`` or ``paused``) moves, so a later step, a stop or another decision
    that got there first is never undone. The arguments are fixed SQL of this package, never input.
    """
    return f"""UPDATE enrollments e
        SET next_step_position = {position} + 1,
            next_due_at = {due},
            status = CASE WHEN {action} = 'complete' THEN 'completed' ELSE e.status END,
            completed_at = CASE WHEN {action} = 'complete' THEN :now ELSE e.completed_at END,
            updated_at = :now
        FROM {source} {alias}
        WHERE e.id = {alias}.enrollment_id AND {action} IN ('advance', 'complete')
          AND e.next_step_position = {position} AND e.status IN ('active', 'paused')"""  # noqa: S608 - constant SQL only


_POSITION = "CAST(:r_position AS integer)"
_ACTION = "CAST(:r_action AS varchar)"

DISPATCH_DUE = sa.text(
    """
    UPDATE messages m
    SET status = 'queued', next_attempt_at = NULL, hold_reason = NULL, updated_at = :now
    WHERE m.id IN (
        SELECT id FROM messages
        WHERE status IN ('queued', 'held') AND next_attempt_at IS NOT NULL AND next_attempt_at <= :now
        ORDER BY next_attempt_at
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    RETURNING m.id, m.channel
    """
)
"""The ticker: ``queued`` or ``held`` messages whose retry or hold time is reached go (back) to ``queued``."""

SETTLE = sa.text(
    f"""
    WITH v AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS varchar[]), CAST(:reasons AS varchar[]),
                             CAST(:next_at AS timestamptz[]), CAST(:event_ids AS uuid[]), CAST(:event_data AS text[]),
                             CAST(:actions AS varchar[]), CAST(:positions AS integer[]), CAST(:due AS timestamptz[]))
            AS v(id, status, reason, next_at, event_id, event_data, action, position, due)
    ), settled AS (
        UPDATE messages m
        SET status = v.status, hold_reason = v.reason, next_attempt_at = v.next_at, updated_at = :now
        FROM v
        WHERE m.id = v.id AND m.status IN ('queued', 'held')
        RETURNING m.id, m.org_id, m.lead_id, m.campaign_id, m.enrollment_id, v.status, v.reason, v.event_id,
                  v.event_data, v.action, v.position, v.due
    ), held_events AS (
        INSERT INTO message_events (id, org_id, message_id, lead_id, campaign_id, type, occurred_at, data)
        SELECT event_id, org_id, id, lead_id, campaign_id, status, :now, CAST(event_data AS jsonb)
        FROM settled WHERE status IN ('held', 'failed')
    ), advanced AS (
        {advance_enrollments("settled", "st", position="st.position", due="st.due", action="st.action")}
    ), stopped AS (
        UPDATE enrollments e
        SET status = 'stopped', stopped_reason = substr(st.reason, 9), next_due_at = NULL, updated_at = :now
        FROM settled st
        WHERE e.id = st.enrollment_id AND st.action = 'stop' AND e.status IN ('active', 'paused')
    )
    SELECT id, status FROM settled
    """  # noqa: S608 - only constant SQL of advance_enrollments is interpolated
)
"""Skip, hold or fail many messages at once: state, ``held``/``failed`` events, the enrollment advanced or stopped."""

STEP = sa.text(
    f"""
    WITH recorded AS (
        UPDATE messages
        SET status = CAST(:r_status AS varchar),
            provider_message_id = COALESCE(CAST(:r_provider AS varchar), provider_message_id),
            sent_at = CASE WHEN CAST(:r_status AS varchar) = 'sent' THEN :now ELSE sent_at END,
            error_code = CAST(:r_code AS varchar), error_detail = CAST(:r_detail AS text),
            next_attempt_at = CAST(:r_next_attempt AS timestamptz), hold_reason = NULL, updated_at = :now
        WHERE id = CAST(:r_id AS uuid) AND attempt = CAST(:r_attempt AS integer) AND status IN ('sending', 'unknown')
        RETURNING id, org_id, lead_id, campaign_id, enrollment_id
    ), recorded_event AS (
        INSERT INTO message_events (id, org_id, message_id, lead_id, campaign_id, type, occurred_at, data)
        SELECT CAST(:r_event_id AS uuid), org_id, id, lead_id, campaign_id, CAST(:r_event AS varchar), :now,
               CAST(:r_event_data AS jsonb)
        FROM recorded WHERE CAST(:r_event AS varchar) IS NOT NULL
        RETURNING id, org_id
    ), advanced AS (
        {advance_enrollments("recorded", "r", position=_POSITION, due="CAST(:r_due AS timestamptz)", action=_ACTION)}
    ), claimed AS (
        UPDATE messages m
        SET status = 'sending', attempt = m.attempt + 1, next_attempt_at = :c_lease,
            subject = CAST(:c_subject AS text), body = CAST(:c_body AS text), variant = CAST(:c_variant AS varchar),
            hold_reason = NULL, updated_at = :now
        WHERE m.id = CAST(:c_id AS uuid) AND m.status IN ('queued', 'held')
          AND COALESCE(m.next_attempt_at, '-infinity') <= :now
          AND EXISTS (SELECT 1 FROM enrollments e JOIN campaigns c ON c.id = e.campaign_id
                      WHERE e.id = m.enrollment_id AND e.status = 'active' AND c.status = 'active')
          AND NOT EXISTS (SELECT 1 FROM senders x WHERE x.id = CAST(:c_sender AS uuid) AND x.paused_at IS NOT NULL)
        RETURNING m.id, m.org_id, m.attempt
    ), sender_paused AS (
        -- The sender was paused (by this very step's record, or since the batch was loaded):
        -- the message waits, untried.
        UPDATE messages m
        SET status = 'held', hold_reason = 'sender_paused', next_attempt_at = CAST(:c_recheck AS timestamptz),
            updated_at = :now
        WHERE m.id = CAST(:c_id AS uuid) AND m.status IN ('queued', 'held')
          AND EXISTS (SELECT 1 FROM senders x WHERE x.id = CAST(:c_sender AS uuid) AND x.paused_at IS NOT NULL)
        RETURNING m.id
    ), links AS (
        INSERT INTO message_links (message_id, position, org_id, url, created_at)
        SELECT c.id, u.n - 1, c.org_id, u.url, :now
        FROM claimed c, unnest(CAST(:c_urls AS text[])) WITH ORDINALITY AS u(url, n)
        ON CONFLICT (message_id, position) DO NOTHING
    )
    SELECT (SELECT count(*) FROM recorded) AS recorded,
           (SELECT attempt FROM claimed) AS claimed_attempt,
           (SELECT count(*) FROM sender_paused) AS sender_paused,
           (SELECT EXISTS (SELECT 1 FROM webhook_endpoints w, recorded_event ev
                           WHERE w.org_id = ev.org_id AND w.active AND w.event_types ? CAST(:r_event AS varchar)))
               AS webhook
    """  # noqa: S608 - only constant SQL of advance_enrollments is interpolated
)
"""One durable step of a batch: record the previous send (ledger, event, next step) and claim the next message.

Either half may be empty (NULL ids). The claim takes only ``queued`` or due ``held`` rows of a
live enrollment and campaign, so a message the inbound side skipped (reply, opt-out) or one
another execution holds can never be claimed; the tracked links go in with the frozen body.
A message whose sender (``:c_sender``) is paused is not claimed but held (``sender_paused``)
until ``:c_recheck``.
"""

REVIEW = sa.text(
    """
    WITH v AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:subjects AS text[]), CAST(:bodies AS text[]),
                             CAST(:deadlines AS timestamptz[])) AS v(id, subject, body, deadline)
    )
    UPDATE messages m
    SET status = 'awaiting_review', subject = v.subject, body = v.body, review_deadline_at = v.deadline,
        next_attempt_at = NULL, hold_reason = NULL, updated_at = :now
    FROM v
    WHERE m.id = v.id AND m.status IN ('queued', 'held') AND m.reviewed_at IS NULL
    RETURNING m.id
    """
)
"""The worker: written and frozen messages that need a person's approval wait ``awaiting_review``.

Their content is kept on the row (what the reviewer reads and may edit); a message already
reviewed (``reviewed_at``) is never put aside again. The enrollment stays on the step.
"""

APPROVE = sa.text(
    """
    WITH v AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:subjects AS text[]), CAST(:bodies AS text[]))
            AS v(id, subject, body)
    )
    UPDATE messages m
    SET status = 'queued', subject = v.subject, body = v.body, reviewed_by = CAST(:by AS uuid),
        reviewed_at = :now, review_note = CAST(:note AS text), review_deadline_at = NULL,
        next_attempt_at = :now, hold_reason = NULL, updated_at = :now
    FROM v
    WHERE m.id = v.id AND m.status = 'awaiting_review'
    RETURNING m.id, m.channel
    """
)
"""Approve messages awaiting review with their (possibly edited) content: ``queued`` and due at once.

The ticker hands them to the worker (``DISPATCH_DUE``), whose conditional claim sends each once,
with exactly this content (``reviewed_at`` says it was approved). ``:by`` is None when the
review deadline approved it. Of two approvals of one message, one finds the row.
"""

REJECT = sa.text(
    f"""
    WITH v AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:actions AS varchar[]), CAST(:positions AS integer[]),
                             CAST(:due AS timestamptz[])) AS v(id, action, position, due)
    ), rejected AS (
        UPDATE messages m
        SET status = 'skipped', hold_reason = CAST(:reason AS varchar), review_note = CAST(:note AS text),
            reviewed_by = CAST(:by AS uuid), reviewed_at = :now, review_deadline_at = NULL,
            next_attempt_at = NULL, updated_at = :now
        FROM v
        WHERE m.id = v.id AND m.status = 'awaiting_review'
        RETURNING m.id, m.enrollment_id, v.action, v.position, v.due
    ), advanced AS (
        {advance_enrollments("rejected", "rj", position="rj.position", due="rj.due", action="rj.action")}
    )
    SELECT id FROM rejected
    """  # noqa: S608 - only constant SQL of advance_enrollments is interpolated
)
"""Reject messages awaiting review (``:reason`` ``review_rejected``) or skip those past their deadline
(``review_expired``): ``skipped``, never sent, and the enrollment moves on as after any skip."""

EXPIRED_REVIEWS = sa.text(
    """
    SELECT m.id, m.subject, m.body, c.review_after_deadline FROM messages m JOIN campaigns c ON c.id = m.campaign_id
    WHERE m.status = 'awaiting_review' AND m.review_deadline_at IS NOT NULL AND m.review_deadline_at <= :now
    ORDER BY m.review_deadline_at
    LIMIT :batch
    FOR UPDATE OF m SKIP LOCKED
    """
)
"""The ticker: messages whose review deadline passed, with what their campaign does then (skip or send)."""

LOST_CLAIMS = sa.text(
    """
    UPDATE messages m
    SET status = 'unknown', error_code = 'claim_lost', error_detail = 'found in sending after its claim expired',
        next_attempt_at = NULL, hold_reason = NULL, updated_at = :now
    WHERE m.id IN (
        SELECT id FROM messages
        WHERE status = 'sending' AND next_attempt_at < :now
        ORDER BY next_attempt_at
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    RETURNING m.id, m.org_id, m.campaign_id, m.channel
    """
)
"""Claims whose lease ran out (their holder died): ``unknown``, never resent; the enrollment stays on the step.

A claimer that was only slow still records the real outcome over it (the record accepts ``unknown``).
"""


def advance(
    *,
    message_id: uuid.UUID,
    to_status: str,
    now: datetime,
    from_statuses: Iterable[str] | None = None,
    error_code: str | None = None,
    error_detail: str | None = None,
) -> sa.Update:
    """A provider's callback: move a message to ``to_status`` only from ``from_statuses``, ``RETURNING`` its id.

    ``from_statuses`` defaults to :func:`libs.ledger.states.advance_from` (forward only, never
    out of a settled state); no row comes back when the message was elsewhere.
    """
    sources = advance_from(to_status) if from_statuses is None else from_statuses
    values: dict[str, Any] = {"status": to_status, "updated_at": now}
    if error_code is not None:
        values["error_code"] = error_code[:64]
    if error_detail is not None:
        values["error_detail"] = error_detail[:2000]
    return (
        sa.update(MESSAGES)
        .where(MESSAGES.c.id == message_id, MESSAGES.c.status.in_(sorted(sources)))
        .values(**values)
        .returning(MESSAGES.c.id)
    )


def skip_unsent(*, org_id: uuid.UUID, enrollment_ids: Sequence[uuid.UUID], reason: str, now: datetime) -> sa.Update:
    """The unsent messages (:data:`~libs.ledger.states.UNSENT`) of stopped enrollments become ``skipped``.

    In the transaction that stopped them, so the worker's conditional claim never picks them up.
    """
    return (
        sa.update(MESSAGES)
        .where(
            MESSAGES.c.org_id == org_id,
            MESSAGES.c.enrollment_id.in_(list(enrollment_ids)),
            MESSAGES.c.status.in_(sorted(UNSENT)),
        )
        .values(status=MessageStatus.SKIPPED.value, hold_reason=reason[:64], next_attempt_at=None, updated_at=now)
    )


TOMBSTONE = sa.text(
    """
    WITH target AS (
        SELECT id, status = ANY(CAST(:unsent AS text[])) AS unsent FROM messages
        WHERE org_id = :org AND lead_id = :lead
        FOR UPDATE
    ), tombstoned AS (
        UPDATE messages m
        SET status = CASE WHEN t.unsent THEN 'skipped' ELSE m.status END,
            hold_reason = CASE WHEN t.unsent THEN :reason ELSE m.hold_reason END,
            next_attempt_at = CASE WHEN t.unsent THEN NULL ELSE m.next_attempt_at END,
            subject = NULL, body = NULL, error_detail = NULL, updated_at = :now
        FROM target t
        WHERE m.id = t.id AND m.org_id = :org
        RETURNING t.unsent
    )
    SELECT count(*) AS tombstoned, count(*) FILTER (WHERE unsent) AS skipped FROM tombstoned
    """
).bindparams(sa.bindparam("unsent", sorted(UNSENT)))
"""An erasure: skip what has not gone (no claim can take a ``skipped`` row) and null the text of
every message of the lead (``:org``, ``:lead``, ``:reason``, ``:now``); counts what it touched."""
