"""Every statement that changes an enrollment's status, and a campaign's pause and resume.

An enrollment is ``active`` or ``paused`` while it may still send (:data:`~libs.ledger.states.ENROLLMENT_LIVE`)
and ends ``completed`` or ``stopped``. Each statement here is conditional on the state it moves
from, so of two writers racing on one enrollment the first wins and the other finds no row:

- the ticker claims due enrollments (:data:`CLAIM_DUE_ENROLLMENTS`: the step's message is
  created, ``completed`` when no step is left) and releases those held on an unknown outcome
  (:data:`RELEASE_HELD`);
- the worker stops one (:data:`STOP`), and advances one with the message it settles or records
  (:mod:`libs.ledger.messages`);
- the campaign service and the gateway's operator actions pause, resume, launch and archive a
  campaign's enrollments (:func:`pause_enrollments`, :func:`resume_enrollments`,
  :func:`launch_waiting`, :func:`stop_campaign_enrollments`), the gateway with the campaign row
  itself (:data:`PAUSE_CAMPAIGN`, :data:`RESUME_CAMPAIGN`);
- the inbound side and an erasure stop a lead's enrollments (:func:`stop_leads`), the campaign
  service one enrollment (:func:`stop_enrollment`); a reply that asks to wait (out of office,
  not now) holds one until a date (:func:`pause_until`, :func:`defer_unsent`).

The statements are plain SQLAlchemy Core, so async sessions (campaign service, gateway) and sync
sessions (worker, ticker, inbound jobs) run the very same SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa

from libs.db.models.campaign import Campaign, Enrollment, EnrollmentStatus, Message, MessageStatus
from libs.ledger.states import ENROLLMENT_LIVE

ENROLLMENTS: sa.Table = Enrollment.__table__  # type: ignore[attr-defined]
CAMPAIGNS: sa.Table = Campaign.__table__  # type: ignore[attr-defined]
MESSAGES: sa.Table = Message.__table__  # type: ignore[attr-defined]

JOB_OF_PREFIX = "tw:job-of:"
"""The Redis key prefix naming the RQ job that carries a queued message (see :func:`job_of_key`)."""


def job_of_key(message_id: uuid.UUID | str) -> str:
    """The Redis key the ticker writes for each message it enqueues, naming the job that carries it.

    The ticker's repair pass reads it to find messages whose job went missing; the gateway's
    pause reads it to cancel the jobs that carry only the paused campaign's messages.
    """
    return f"{JOB_OF_PREFIX}{message_id}"


# --------------------------------------------------------------------------- the ticker and the worker

CLAIM_DUE_ENROLLMENTS = sa.text(
    """
    WITH due AS (
        SELECT e.id, e.org_id, e.campaign_id, e.lead_id, e.next_step_position, e.next_due_at
        FROM enrollments e
        JOIN campaigns c ON c.id = e.campaign_id
        WHERE e.status = 'active' AND e.next_due_at IS NOT NULL AND e.next_due_at <= :now
          AND c.status = 'active'
        ORDER BY e.next_due_at
        LIMIT :batch
        FOR UPDATE OF e SKIP LOCKED
    ), stepped AS (
        SELECT d.*, s.id AS step_id, s.channel
        FROM due d
        LEFT JOIN campaign_steps s ON s.campaign_id = d.campaign_id AND s.position = d.next_step_position
    ), inserted AS (
        INSERT INTO messages (id, org_id, enrollment_id, step_id, campaign_id, lead_id, channel, status,
                              attempt, due_at, created_at, updated_at)
        SELECT gen_random_uuid(), org_id, id, step_id, campaign_id, lead_id, channel, 'queued', 0,
               next_due_at, :now, :now
        FROM stepped WHERE step_id IS NOT NULL
        ON CONFLICT (enrollment_id, step_id) DO NOTHING
        RETURNING id, channel
    ), advanced AS (
        UPDATE enrollments e
        SET next_due_at = NULL,
            status = CASE WHEN st.step_id IS NULL THEN 'completed' ELSE e.status END,
            completed_at = CASE WHEN st.step_id IS NULL THEN :now ELSE e.completed_at END,
            updated_at = :now
        FROM stepped st WHERE e.id = st.id
        RETURNING e.id
    )
    SELECT id, channel, (SELECT count(*) FROM advanced) AS claimed FROM inserted
    """
)
"""The ticker: due active enrollments of active campaigns get their step's ``queued`` message
(``completed`` when the sequence has no step left); ``next_due_at`` is cleared while it is in the ledger."""

RELEASE_HELD = sa.text(
    """
    UPDATE enrollments e
    SET next_step_position = v.position + 1,
        next_due_at = v.due,
        status = CASE WHEN v.action = 'complete' THEN 'completed' ELSE e.status END,
        completed_at = CASE WHEN v.action = 'complete' THEN :now ELSE e.completed_at END,
        updated_at = :now
    FROM unnest(CAST(:ids AS uuid[]), CAST(:positions AS integer[]), CAST(:actions AS varchar[]),
                CAST(:due AS timestamptz[])) AS v(id, position, action, due)
    WHERE e.id = v.id AND e.status = 'active' AND e.next_due_at IS NULL AND e.next_step_position = v.position
    RETURNING e.id
    """
)
"""Move held enrollments on past their unknown step, as a send would (only if still held on it)."""

STOP = sa.text(
    """
    UPDATE enrollments SET status = 'stopped', stopped_reason = :reason, next_due_at = NULL, updated_at = :now
    WHERE id = :id AND status IN ('active', 'paused')
    """
)
"""The worker: stop one live enrollment (a stop rule met while sending)."""


# --------------------------------------------------------------------------- a lead's enrollments


def stop_leads(
    *,
    org_id: uuid.UUID,
    lead_ids: Sequence[uuid.UUID],
    reason: str,
    now: datetime,
    rule: str | None = None,
    rule_default: bool = True,
    campaign_id: uuid.UUID | None = None,
) -> sa.Update:
    """Stop the leads' live enrollments (only where the campaign's stop ``rule`` is on, when given).

    ``RETURNING`` the stopped enrollments' ids; the inbound side then skips their unsent messages
    (:func:`libs.ledger.messages.skip_unsent`), an erasure tombstones them.
    """
    conditions = [
        ENROLLMENTS.c.org_id == org_id,
        ENROLLMENTS.c.lead_id.in_(list(lead_ids)),
        ENROLLMENTS.c.status.in_(sorted(ENROLLMENT_LIVE)),
    ]
    if campaign_id is not None:
        conditions.append(ENROLLMENTS.c.campaign_id == campaign_id)
    if rule is not None:
        flag = sa.func.coalesce(CAMPAIGNS.c.stop_rules[rule].as_boolean(), sa.literal(rule_default))
        conditions.append(
            ENROLLMENTS.c.campaign_id.in_(sa.select(CAMPAIGNS.c.id).where(CAMPAIGNS.c.org_id == org_id, flag))
        )
    return (
        sa.update(ENROLLMENTS)
        .where(*conditions)
        .values(status=EnrollmentStatus.STOPPED.value, stopped_reason=reason[:64], next_due_at=None, updated_at=now)
        .returning(ENROLLMENTS.c.id)
    )


def stop_enrollment(*, org_id: uuid.UUID, enrollment_id: uuid.UUID, reason: str, now: datetime) -> sa.Update:
    """Take one lead out of a campaign (an enrollment's removal): stopped if still live, ``RETURNING`` its id."""
    return (
        sa.update(ENROLLMENTS)
        .where(
            ENROLLMENTS.c.org_id == org_id,
            ENROLLMENTS.c.id == enrollment_id,
            ENROLLMENTS.c.status.in_(sorted(ENROLLMENT_LIVE)),
        )
        .values(status=EnrollmentStatus.STOPPED.value, stopped_reason=reason[:64], next_due_at=None, updated_at=now)
        .returning(ENROLLMENTS.c.id)
    )


def pause_until(
    *, org_id: uuid.UUID, enrollment_id: uuid.UUID, until: datetime, due: datetime, reason: str, now: datetime
) -> sa.Update:
    """Hold a live enrollment until ``until``: its next step is due no earlier than ``due``.

    The status does not change: the enrollment stays ``active`` (or ``paused`` with its campaign)
    and the ticker claims it when ``next_due_at`` comes, as any other (``due`` is the first open
    window at or after ``until``). A next step already due later keeps its time; one already in
    the ledger (``next_due_at`` NULL) waits through :func:`defer_unsent` (unless it is being sent).
    ``RETURNING`` the id and the new due time.
    """
    return (
        sa.update(ENROLLMENTS)
        .where(
            ENROLLMENTS.c.org_id == org_id,
            ENROLLMENTS.c.id == enrollment_id,
            ENROLLMENTS.c.status.in_(sorted(ENROLLMENT_LIVE)),
        )
        .values(
            paused_until=until,
            paused_reason=reason[:32],
            next_due_at=sa.case(
                (ENROLLMENTS.c.next_due_at.is_(None), None), else_=sa.func.greatest(ENROLLMENTS.c.next_due_at, due)
            ),
            updated_at=now,
        )
        .returning(ENROLLMENTS.c.id, ENROLLMENTS.c.next_due_at)
    )


def defer_unsent(*, org_id: uuid.UUID, enrollment_id: uuid.UUID, due: datetime, now: datetime) -> sa.Update:
    """With :func:`pause_until`: the enrollment's step already in the ledger and not claimed waits until ``due``.

    A ``queued`` or ``held`` message with a ``next_attempt_at`` ahead is not claimed (the worker
    answers ``not_due``) and the ticker's ``DISPATCH_DUE`` queues it again at that time, as for a
    retry; its status does not change, and a later time already set is kept. ``RETURNING`` id and time.
    """
    messages = MESSAGES
    return (
        sa.update(messages)
        .where(
            messages.c.org_id == org_id,
            messages.c.enrollment_id == enrollment_id,
            messages.c.status.in_((MessageStatus.QUEUED.value, MessageStatus.HELD.value)),
        )
        .values(
            next_attempt_at=sa.func.greatest(sa.func.coalesce(messages.c.next_attempt_at, due), due),
            updated_at=now,
        )
        .returning(messages.c.id, messages.c.next_attempt_at)
    )


# --------------------------------------------------------------------------- a campaign's enrollments


def campaign_enrollments(
    *,
    org_id: uuid.UUID,
    campaign_id: uuid.UUID,
    from_statuses: Iterable[str],
    to: EnrollmentStatus | str,
    reason: str | None = None,
    not_before_now: bool = False,
) -> sa.Update:
    """Move every enrollment of the campaign in ``from_statuses`` to ``to`` (``reason`` kept as ``stopped_reason``).

    ``not_before_now`` moves a due time already past to now (a resume: what was due while paused
    goes at once, spread by the ticker, instead of keeping a stale order).
    """
    values: dict[str, object] = {"status": EnrollmentStatus(to).value, "updated_at": sa.func.now()}
    if reason is not None:
        values["stopped_reason"] = reason
    if not_before_now:
        values["next_due_at"] = sa.func.greatest(ENROLLMENTS.c.next_due_at, sa.func.now())
    return (
        sa.update(ENROLLMENTS)
        .where(
            ENROLLMENTS.c.org_id == org_id,
            ENROLLMENTS.c.campaign_id == campaign_id,
            ENROLLMENTS.c.status.in_(sorted(from_statuses)),
        )
        .values(**values)
    )


def pause_enrollments(*, org_id: uuid.UUID, campaign_id: uuid.UUID) -> sa.Update:
    """A campaign's pause: its active enrollments become ``paused`` (their place in the sequence is kept)."""
    return campaign_enrollments(
        org_id=org_id, campaign_id=campaign_id, from_statuses=[EnrollmentStatus.ACTIVE], to=EnrollmentStatus.PAUSED
    )


def resume_enrollments(*, org_id: uuid.UUID, campaign_id: uuid.UUID) -> sa.Update:
    """A campaign's resume: its paused enrollments become ``active``, a due time already past moved to now."""
    return campaign_enrollments(
        org_id=org_id,
        campaign_id=campaign_id,
        from_statuses=[EnrollmentStatus.PAUSED],
        to=EnrollmentStatus.ACTIVE,
        not_before_now=True,
    )


def stop_campaign_enrollments(*, org_id: uuid.UUID, campaign_id: uuid.UUID, reason: str) -> sa.Update:
    """A campaign's archive: its live enrollments become ``stopped`` with ``reason``."""
    return campaign_enrollments(
        org_id=org_id,
        campaign_id=campaign_id,
        from_statuses=ENROLLMENT_LIVE,
        to=EnrollmentStatus.STOPPED,
        reason=reason,
    )


def launch_waiting(
    *, org_id: uuid.UUID, campaign_id: uuid.UUID, first_delay_minutes: int, pacing_per_day: int | None
) -> sa.TextClause:
    """A campaign's launch: enrollments not started yet (``paused`` on step 1) become ``active``.

    Each gets its first due time (``first_delay_minutes`` from now; with pacing, the n-th lead
    starts on day floor(n / ``pacing_per_day``)); a due time already set is kept.
    """
    pacing = " + make_interval(days => ((w.rn - 1) / :pacing)::int)" if pacing_per_day else ""
    # Only the constant pacing fragment is interpolated; values are bound.
    sql = f"""
    WITH w AS (
        SELECT id, row_number() OVER (ORDER BY created_at, id) AS rn FROM enrollments
        WHERE org_id = :org AND campaign_id = :campaign AND status = 'paused' AND next_step_position = 1
    )
    UPDATE enrollments e
    SET status = 'active', updated_at = now(),
        next_due_at = COALESCE(e.next_due_at, now() + make_interval(mins => :delay){pacing})
    FROM w WHERE e.id = w.id
    """  # noqa: S608
    statement = sa.text(sql).bindparams(org=org_id, campaign=campaign_id, delay=first_delay_minutes)
    return statement.bindparams(pacing=pacing_per_day) if pacing_per_day else statement


# --------------------------------------------------------------------------- the campaign row (operators)

PAUSE_CAMPAIGN = sa.text(
    "UPDATE campaigns SET status = 'paused', paused_at = now(), updated_at = now(), version = version + 1 "
    "WHERE id = :id AND status = 'active' RETURNING org_id"
)
"""An operator's pause of an active campaign (any organization): ``RETURNING`` its org, no row when it was not active.

The campaign service pauses through its own ORM row (the same columns: status, ``paused_at``,
``version``), then :func:`pause_enrollments`, as the gateway does after this statement."""

RESUME_CAMPAIGN = sa.text(
    "UPDATE campaigns SET status = 'active', paused_at = NULL, updated_at = now(), version = version + 1 "
    "WHERE id = :id AND status = 'paused' RETURNING org_id"
)
"""An operator's resume of a paused campaign: ``RETURNING`` its org, no row when it was not paused
(then :func:`resume_enrollments`)."""
