"""Domain errors of the auth service; their class names are the stable problem codes."""

from __future__ import annotations

from typing import Any

from libs.errors import Conflict, Forbidden, NotFound, Unauthorized


class InvalidCredentials(Unauthorized):
    """Wrong email or password; deliberately the same answer for both."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("Invalid email or password.", **kwargs)


class InvalidRefreshToken(Unauthorized):
    """The refresh token is unknown, expired, revoked or was already used."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("The refresh token is not valid.", **kwargs)


class InvalidApiKey(Unauthorized):
    """The API key is unknown, revoked or expired."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("The API key is not valid.", **kwargs)


class EmailTaken(Conflict):
    """An account already uses this email."""


class LastOwner(Conflict):
    """The change would leave the organization without an owner."""


class AlreadyMember(Conflict):
    """The person is already a member of the organization."""


class NoOrganization(Forbidden):
    """The user belongs to no organization (or not to the one asked for)."""


class MemberNotFound(NotFound):
    """No such member in this organization."""


class InviteNotFound(NotFound):
    """No such invite in this organization."""


class InviteInvalid(NotFound):
    """The invite token is unknown, used, revoked or expired."""


class ApiKeyNotFound(NotFound):
    """No such API key in this organization."""
