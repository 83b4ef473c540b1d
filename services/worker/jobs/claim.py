"""Claim and hand off, message by message: one statement and one durable commit per message.

The statement that *claims* message ``i`` also *records* the outcome of message ``i - 1``
(:func:`services.worker.jobs.record.step`). The claim is committed before the hand-off, so a
message is never handed off unclaimed; the outcome of a hand-off is committed before the next
hand-off starts. For email the claim commits on the context's step thread while this thread
speaks SMTP up to the 354 reply to DATA; the final "." waits for the commit, and a send whose
claim was refused or failed is aborted (connection closed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from datetime import timedelta
from functools import partial

import structlog
from rq.timeouts import BaseTimeoutException
from sqlalchemy import Connection

from libs.db.session import system_role, system_session
from services.worker.channels.outcome import SendResult
from services.worker.gate import Verdict, check_time
from services.worker.jobs import outgoing
from services.worker.jobs.announce import Announcements
from services.worker.jobs.context import Context
from services.worker.jobs.outgoing import Handoff, Outgoing
from services.worker.jobs.prepare import Item, Results, settle
from services.worker.jobs.record import Record, classify, step

log = structlog.get_logger(__name__)

RECHECK_AFTER = timedelta(seconds=5)
"""A batch older than this re-checks send windows and calling hours right before each claim."""


def deliver(ctx: Context, items: Sequence[Item], results: Results, done: Announcements) -> None:
    """Claim, hand off and record each message in turn: one statement and one commit per message."""
    if not items:
        return
    try:
        with _autocommit(ctx) as conn:
            _deliver_on(ctx, conn, items, results, done)
    finally:
        # Whatever was not recorded by now (a failed commit) is left to its lease: it runs out and
        # the message becomes unknown, as a dead worker's would.
        ctx.release_claim(*(item.row.id for item in items))


@contextmanager
def _autocommit(ctx: Context) -> Iterator[Connection]:
    """One pooled connection for a batch's steps: each step is one statement, committed on its own."""
    with (
        ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        system_role(conn) as scoped,
    ):
        yield scoped


def _deliver_on(ctx: Context, conn: Connection, items: Sequence[Item], results: Results, done: Announcements) -> None:
    """Each item in turn; the outcome of one is recorded by the statement that claims the next (or a last step)."""
    pending: Record | None = None
    started = ctx.now()
    for item in items:
        now = ctx.now()
        if now - started > RECHECK_AFTER:
            decision = check_time(item.facts, now)
            if decision.verdict is not Verdict.SEND:
                step(ctx, conn, pending, None, done)
                pending = None
                with system_session(ctx.engine) as session:
                    settle(session, [(item.row, decision)], now, results, done)
                continue
        pending = _send(ctx, conn, pending, item, results, done)
    step(ctx, conn, pending, None, done)


def _send(
    ctx: Context, conn: Connection, pending: Record | None, item: Item, results: Results, done: Announcements
) -> Record | None:
    """Claim ``item`` (recording ``pending``) and hand it off; return its outcome, still to record."""
    row = item.row
    try:
        message = _outgoing(ctx, item)
    except Exception as exc:  # a broken message must not block the rest of the batch
        log.exception("message_failed_before_claim", message_id=str(row.id), error=type(exc).__name__)
        results[row.id] = "error"
        return pending
    if ctx.before_claim is not None:
        ctx.before_claim(row)
    if message.begin is None:
        attempt = step(ctx, conn, pending, (row, message), done)
        handoff = Handoff(message.send)
    else:
        attempt, handoff = _claim_while_opening(ctx, conn, pending, item, message, done)
    if attempt is None:
        results[row.id] = "already_claimed"
        return None
    return _hand_off(ctx, conn, item, attempt, handoff, results, done)


def _hand_off(
    ctx: Context,
    conn: Connection,
    item: Item,
    attempt: int,
    handoff: Handoff,
    results: Results,
    done: Announcements,
) -> Record:
    """Hand the claimed message to the provider; a crash mid-send makes its outcome unknown."""
    row = item.row
    try:
        if ctx.before_send is not None:
            ctx.before_send(row)
        result = handoff.finish()
    except BaseException as exc:
        handoff.abort()  # a send never finished is given up (a finished one is not touched)
        # A timeout, a kill signal turned exception, or a bug mid-send: the provider may have it.
        record = classify(ctx, row, attempt, SendResult.unknown("worker_error", repr(exc)), ctx.now())
        results[row.id] = "unknown"
        if _fatal(exc):
            try:
                step(ctx, conn, record, None, done)
            except Exception:  # the lease turns it unknown anyway; keep the original error
                log.exception("message_unknown_not_recorded", message_id=str(row.id))
            raise
        log.exception("message_send_crashed", message_id=str(row.id), error=type(exc).__name__)
        return record
    record = classify(ctx, row, attempt, result, ctx.now())
    results[row.id] = "retry" if record.status == "queued" else record.status
    return record


def _fatal(exc: BaseException) -> bool:
    """Whether ``exc`` must end the job (a job timeout or a signal), not only the message."""
    return not isinstance(exc, Exception) or isinstance(exc, BaseTimeoutException)


def _outgoing(ctx: Context, item: Item) -> Outgoing:
    """Build what goes out for ``item`` on its channel (``outgoing.build``)."""
    assert item.draft is not None
    variant = str(item.variant["key"])[:32] if item.variant and item.variant.get("key") else None
    return outgoing.build(ctx, item.row, item.draft, variant)


def _claim_while_opening(
    ctx: Context, conn: Connection, record: Record | None, item: Item, message: Outgoing, done: Announcements
) -> tuple[int | None, Handoff]:
    """Commit the claim (and the previous record) while the provider conversation runs up to the hand-off.

    The claim statement goes to PostgreSQL on the context's step thread while this thread
    speaks SMTP up to the 354 reply to DATA: nothing is handed off before the final ".", which
    the caller sends (``finish``) only once the claim has committed. An opened send whose claim
    was not granted, or failed, is aborted, never finished. An error while opening is kept for
    ``finish`` to raise, so the caller treats it as it treats a crash mid-send.
    """
    assert message.begin is not None
    claim = ctx.step_thread().submit(step, ctx, conn, record, (item.row, message), done)
    error: BaseException | None = None
    try:
        opened = message.begin()
    except BaseException as exc:  # kept for finish(); a timeout or signal is re-raised below at the latest
        error = exc
    finally:
        futures.wait([claim])  # the statement is over before the connection is used again
    handoff = (
        Handoff(partial(_reraise, error))
        if error is not None
        else opened
        if isinstance(opened, Handoff)
        else Handoff.failed(opened)
    )
    if claim.exception() is not None or claim.result() is None:
        handoff.abort()
        if error is not None and _fatal(error):
            raise error
    return claim.result(), handoff  # raises the claim's error, as the plain path does


def _reraise(error: BaseException) -> SendResult:
    raise error
