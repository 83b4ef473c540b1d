"""The ledger's states and the named sets every box reads them through.

One ``messages`` row per (enrollment, step) walks the message state machine::

    queued -> sending -> sent -> delivered
       |        |         \\-> failed | bounced        (provider callbacks, DSNs)
       |        \\-> failed | bounced | unknown | queued (retry)
       \\-> held -> queued (its time reached)
       \\-> awaiting_review -> queued (approved) | skipped (rejected, deadline)
       \\-> skipped | held | failed                     (gate refusal, stop rule, cap)

An enrollment is ``active`` or ``paused`` while it may still send, and ends ``completed`` (no
step left) or ``stopped`` (reply, opt-out, archive, removal, erasure). The enums are
:mod:`libs.db.models.campaign`'s (the CHECK constraints are built from them); the sets below
are plain ``str`` values, so they can be handed to SQL as parameters and compared with a row's
``status`` column alike. Each set says what it means and who reads it: a box needing "the
states where X" takes the set from here instead of spelling its own tuple.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from libs.db.models.campaign import CampaignStatus, EnrollmentStatus, MessageStatus

__all__ = [
    "ADVANCE_FROM",
    "AWAITING_REVIEW",
    "CAMPAIGN_FINISHED",
    "ENROLLMENT_ENDED",
    "ENROLLMENT_LIVE",
    "HANDED_OFF",
    "IN_FLIGHT",
    "RANK",
    "SETTLED",
    "TERMINAL",
    "UNSENT",
    "CampaignStatus",
    "EnrollmentStatus",
    "MessageStatus",
    "advance_from",
]

_M = MessageStatus
_E = EnrollmentStatus

# --------------------------------------------------------------------------- messages

AWAITING_REVIEW: Final = frozenset({_M.AWAITING_REVIEW.value})
"""Written and frozen, waiting for a person's approval (a campaign's review mode): never claimed.

Only an approval (``APPROVE``: back to ``queued``, marked reviewed so the worker sends it as
approved) or a rejection or a passed deadline (``REJECT``: ``skipped``) moves it out.
"""

UNSENT: Final = frozenset({_M.QUEUED.value, _M.HELD.value}) | AWAITING_REVIEW
"""Nobody has claimed the message yet: it has not gone, and nothing is handing it to a provider.

Only ``queued`` and ``held`` rows are claimed (``STEP``), settled by the gate (``SETTLE``) or
frozen (``FREEZE``); one awaiting review waits for a person (:data:`AWAITING_REVIEW`).
Stopping an enrollment skips its unsent messages, those awaiting review included (the inbound
side's ``stop_enrollments``), and an erasure skips and blanks them (``leads/erasure``).
"""

IN_FLIGHT: Final = frozenset({_M.QUEUED.value, _M.SENDING.value})
"""On its way: waiting for a worker, or claimed and being handed to the provider.

The lead timeline shows the enrollment's next step as ``in_flight`` while its message is here
(``held`` and ``unknown`` have their own explanations there).
"""

HANDED_OFF: Final = frozenset({_M.SENDING.value, _M.UNKNOWN.value, _M.SENT.value})
"""A provider has (or may have) the message, and nothing has settled it yet: a provider's
callback or DSN may move it to ``delivered``, ``failed`` or ``bounced`` (:func:`advance_from`)."""

SETTLED: Final = frozenset({_M.DELIVERED.value, _M.FAILED.value, _M.BOUNCED.value, _M.SKIPPED.value})
"""The end of the message: no callback moves it out any more (except ``delivered`` -> ``bounced``,
a late DSN); a later contrary callback is kept on the inbound event (``kept_<status>``)."""

TERMINAL: Final = frozenset({_M.SENT.value, _M.UNKNOWN.value}) | SETTLED
"""The worker never sends the message again: it went (or may have gone: ``unknown`` is never
resent automatically), or it was settled. A job finding its message here does nothing
(``services/worker``); only an operator's resend brings an ``unknown`` back to ``queued``."""

RANK: Final = MappingProxyType(
    {
        _M.QUEUED.value: 0,
        _M.HELD.value: 0,
        _M.AWAITING_REVIEW.value: 0,
        _M.SENDING.value: 1,
        _M.UNKNOWN.value: 1,
        _M.SENT.value: 2,
        _M.DELIVERED.value: 3,
        _M.FAILED.value: 3,
        _M.BOUNCED.value: 3,
        _M.SKIPPED.value: 3,
    }
)
"""Every message status's progress: a provider's callback only ever moves a message to a higher
rank (``bounced`` also from ``delivered``, the same rank), never back (the inbound side's
``advance``, through :func:`advance_from`)."""


def advance_from(target: str) -> frozenset[str]:
    """The statuses a provider's callback may move a message from to ``target`` (forward only).

    ``sent`` only from a claim or an unknown outcome (never from :data:`UNSENT`: the callback
    of a message never handed off is not believed); ``delivered``, ``failed`` and ``bounced``
    from any :data:`HANDED_OFF` state, and ``bounced`` from ``delivered`` too (a late DSN).
    """
    allowed = {s for s in HANDED_OFF if RANK[s] < RANK[target]}
    if target == _M.BOUNCED:
        allowed.add(_M.DELIVERED.value)
    return frozenset(allowed)


ADVANCE_FROM: Final = MappingProxyType(
    {t: advance_from(t) for t in (_M.SENT.value, _M.DELIVERED.value, _M.FAILED.value, _M.BOUNCED.value)}
)
""":func:`advance_from` for every status a callback can report."""

# --------------------------------------------------------------------------- enrollments

ENROLLMENT_LIVE: Final = frozenset({_E.ACTIVE.value, _E.PAUSED.value})
"""The enrollment may still send: it can be paused/resumed, advanced by a step's outcome, or
stopped (every stop and advance statement is conditional on it)."""

ENROLLMENT_ENDED: Final = frozenset({_E.COMPLETED.value, _E.STOPPED.value})
"""The enrollment is over: the lead finished the sequence (``completed``) or was taken out of it
(``stopped``); nothing moves it again (except an operator's resend rewinding ``completed``)."""

# --------------------------------------------------------------------------- campaigns

CAMPAIGN_FINISHED: Final = frozenset({CampaignStatus.COMPLETED.value, CampaignStatus.ARCHIVED.value})
"""The campaign sends no more: an operator's resend of one of its messages is refused."""
