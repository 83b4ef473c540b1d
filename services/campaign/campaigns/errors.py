"""Domain errors of campaigns, steps, enrollments and messages."""

from __future__ import annotations

from libs.errors import Conflict, Invalid, NotFound, Unavailable


class CampaignNotFound(NotFound):
    """No such campaign in this organization."""

    title = "Campaign not found"


class StepNotFound(NotFound):
    """No such step in this campaign."""

    title = "Step not found"


class EnrollmentNotFound(NotFound):
    """No such enrollment in this campaign."""

    title = "Enrollment not found"


class MessageNotFound(NotFound):
    """No such message in this organization."""

    title = "Message not found"


class LeadNotFound(NotFound):
    """No such lead in this organization."""

    title = "Lead not found"


class BrandNotFound(NotFound):
    """No such brand in this organization."""

    title = "Brand not found"


class InvalidTransition(Conflict):
    """The campaign cannot move from its status to the one asked for."""

    title = "Invalid status transition"


class CampaignLocked(Conflict):
    """The change is not safe while the campaign runs (or once it has ended)."""

    title = "Campaign locked"


class NotReadyToLaunch(Invalid):
    """The campaign or its brand lacks something a launch needs (listed in ``errors``)."""

    title = "Not ready to launch"


class BrandServiceUnavailable(Unavailable):
    """The brand service did not answer the readiness check."""

    title = "Brand service unavailable"
