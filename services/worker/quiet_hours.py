"""Calling hours for SMS and voicemail, as the worker's gate uses them: see :mod:`libs.compliance_hours`."""

from __future__ import annotations

from libs.compliance_hours import (
    CALLING_HOURS,
    FEDERAL,
    STATE_RULES,
    StateRule,
    calling_windows,
    earliest_allowed,
    intersect,
    is_allowed,
    recipient_zones,
    us_state,
)

__all__ = [
    "CALLING_HOURS",
    "FEDERAL",
    "STATE_RULES",
    "StateRule",
    "calling_windows",
    "earliest_allowed",
    "intersect",
    "is_allowed",
    "recipient_zones",
    "us_state",
]
