"""Domain errors of the brand service, each a subclass of a libs error (its class name is the code)."""

from __future__ import annotations

from http import HTTPStatus

from libs.errors import AppError, Conflict, Invalid, NotFound, PreconditionFailed


class BrandNotFound(NotFound):
    """No such brand in the caller's organization."""


class SenderNotFound(NotFound):
    """No such sender under this brand in the caller's organization."""


class CredentialNotFound(NotFound):
    """No such credential in the caller's organization."""


class CredentialExists(Conflict):
    """The organization already has credentials for this provider (update them instead)."""


class VersionMismatch(PreconditionFailed):
    """``If-Match`` names a version that is no longer current: re-read and retry."""


class PreconditionRequired(AppError):
    """Updates must say which version they change: send ``If-Match`` with the ``ETag`` you read."""

    status = HTTPStatus.PRECONDITION_REQUIRED
    title = "Precondition required"


class SenderChanged(Conflict):
    """The sender changed while it was being verified; verify again."""


class SenderVerificationFailed(Invalid):
    """The SMTP server answered but refused (login, STARTTLS, ...): the settings need fixing."""


class SmtpUnreachable(AppError):
    """The SMTP server could not be reached or did not answer in time."""

    status = HTTPStatus.BAD_GATEWAY
    title = "SMTP server unreachable"
