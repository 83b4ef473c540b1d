"""Domain errors of the leads part; each class name is the stable problem ``code``."""

from __future__ import annotations

from libs.errors import Conflict, NotFound


class LeadNotFound(NotFound):
    """No such lead in this organization."""


class ImportNotFound(NotFound):
    """No such import in this organization."""


class SuppressionNotFound(NotFound):
    """No such suppression in this organization."""


class DuplicateLead(Conflict):
    """Another lead already has this email (or, without email, this phone)."""


class ContactErased(Conflict):
    """The person asked to be erased; they may not be added again."""


class LeadErased(Conflict):
    """The lead was erased; it can no longer change."""


class SuppressionLocked(Conflict):
    """Erasure suppressions cannot be removed."""
