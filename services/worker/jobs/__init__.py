"""The job functions RQ runs: gate, personalize, claim, send, record, schedule the next step.

Delivery guarantee: **at most once per message, and never silently lost**. A job may run
twice (RQ ``unique`` ids do not stop a second execution, a repair may re-enqueue, a killed
worker's job may be retried); the conditional claim lets exactly one execution hand the
message to a provider. Errors known to happen before the hand-off put the message back in
the ledger with a next-attempt time (PostgreSQL is the scheduler: RQ's own scheduler can
enqueue twice and dies on a Redis error); anything that may have reached the provider ends
``unknown`` for an operator. Job-timeout exceptions are never swallowed.

A job carries a batch of message ids and works on it set-based:

1. **Load and gate** (``prepare.py``, one transaction for the batch): one query loads every
   message with its gate facts, one query per organization checks suppressions, the pure gate
   decides, the Redis caps are taken in one pipeline, every skip and hold is written by one
   statement, and the content of every sendable message is written and frozen in the audit
   table by one ``INSERT ... ON CONFLICT DO NOTHING`` (a concurrent execution's content wins,
   and is what goes out). Model calls, when an organization has an OpenAI key, happen outside
   any transaction, between the load and the freeze.
2. **Step by step** (``claim.py`` and ``record.py``, one statement and one durable commit per
   message): the statement that *claims* message ``i`` (``queued``/due ``held`` -> ``sending``,
   with its body and tracked links) also *records* the outcome of message ``i - 1`` (ledger, event, next step). The
   claim is committed before the hand-off, so a message is never handed off unclaimed; the
   outcome of a hand-off is committed before the next hand-off starts, so a crash (``kill
   -9``) leaves at most one message of the batch in ``sending``: it becomes ``unknown`` when
   its lease expires, and every message after it is still ``queued`` for the repair pass.
   The lease is short (``SDR_WORKER_ALIVE_TTL``) and renewed by a thread of the live process
   while the send runs, so a killed worker's claim runs out within seconds while a slow send
   of a live one is never taken for lost. An ``unknown`` outcome holds the enrollment on its
   step (no next step is scheduled) until an operator resolves the message.
   A Python exception during a send marks that one message ``unknown`` at once. Nothing is
   recorded in bulk after the fact, so no outcome of a send that happened is ever lost.
   For email the statement commits on a second thread while this one speaks SMTP up to the
   354 reply to DATA (nothing is handed off before the final "."); the final "." waits for
   the commit, and a send whose claim was refused or failed is aborted (connection closed).

Live events and customer webhook jobs are announced only after the commit that recorded them
(:func:`announce` is the one place that does).

The package keeps ``services.worker.jobs.<function>`` valid for jobs already in Redis (the
paths are in ``libs.jobs``); this module holds the job entry points, and the stages live beside it:

- ``prepare.py``: load (one typed ``ledger.LoadedRow`` per message), gate, settle, freeze;
- ``review.py``: review mode (which messages wait ``awaiting_review`` for a person after the
  freeze, and the approved text an approved one goes out with);
- ``claim.py``: claim while opening, hand off, message by message;
- ``record.py``: classify an outcome, record it and advance the enrollment (``ledger.STEP``);
- ``outgoing.py``: what goes out on each channel;
- ``announce.py``: the after-commit announcements;
- ``context.py``: the process's send context (pools, provider clients, held claims).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from services.worker.jobs.announce import LIVE_KIND, Announcements, announce
from services.worker.jobs.claim import deliver
from services.worker.jobs.context import CONTEXT, QUEUE_OF, Context, context, install, job_for
from services.worker.jobs.prepare import load_and_gate
from services.worker.jobs.prepare import request as _request  # the campaign preview composes as the worker does

__all__ = [
    "CONTEXT",
    "LIVE_KIND",
    "QUEUE_OF",
    "Announcements",
    "Context",
    "_request",
    "announce",
    "context",
    "install",
    "job_for",
    "process",
    "run_batch",
    "send_messages",
]


def send_messages(message_ids: list[str]) -> dict[str, str]:
    """Send each message at most once: gate, personalize, claim, send, record, schedule the next step."""
    ctx = context()
    results: dict[str, str] = {}
    ids: list[uuid.UUID] = []
    for raw in message_ids:
        try:
            ids.append(uuid.UUID(raw))
        except ValueError:
            results[raw] = "invalid"
    for message_id, outcome in run_batch(ctx, ids).items():
        results[str(message_id)] = outcome
    return results


def process(ctx: Context, message_id: uuid.UUID) -> str:
    """Run one message through the pipeline; return what happened to it."""
    return run_batch(ctx, [message_id])[message_id]


def run_batch(ctx: Context, message_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Run a batch of messages through the pipeline; return what happened to each."""
    results = dict.fromkeys(message_ids, "missing")
    done = Announcements()
    try:
        items = load_and_gate(ctx, message_ids, results, done)
        announce(ctx.redis, done)
        deliver(ctx, items, results, done)
    finally:
        announce(ctx.redis, done)
    return results
