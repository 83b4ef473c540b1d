"""The message ledger's one home: its states, and the statements that change them.

- :mod:`libs.ledger.states`: the message and enrollment states and their named sets
  (unsent, in flight, handed off, settled, terminal, the progress rank);
- :mod:`libs.ledger.resolution`: operators' decisions on messages whose send outcome is
  ``unknown`` (delivered, failed, resend), for the gateway and ``sdr resolve``.

Like :mod:`libs.suppression`, every statement is plain SQLAlchemy Core, so async sessions (the
campaign service, the gateway) and sync sessions (the worker, the CLI) run the very same SQL.
What :mod:`libs.ledger.resolution` exports is re-exported here (``from libs.ledger import
resolve``).
"""

from __future__ import annotations

from libs.ledger.resolution import (
    LOAD,
    MAX_BATCH,
    NOTE_MAX,
    OPERATOR_BY_EMAIL,
    OPERATOR_EMAIL,
    RESEND_REASON,
    RESOLVE,
    STATUSES,
    Batch,
    Operator,
    Outcome,
    Refusal,
    Resolution,
    announce,
    clean_note,
    next_step,
    operator_by_email,
    operator_email,
    resolve,
    resolve_sync,
    unique_ids,
)

__all__ = [
    "LOAD",
    "MAX_BATCH",
    "NOTE_MAX",
    "OPERATOR_BY_EMAIL",
    "OPERATOR_EMAIL",
    "RESEND_REASON",
    "RESOLVE",
    "STATUSES",
    "Batch",
    "Operator",
    "Outcome",
    "Refusal",
    "Resolution",
    "announce",
    "clean_note",
    "next_step",
    "operator_by_email",
    "operator_email",
    "resolve",
    "resolve_sync",
    "unique_ids",
]
