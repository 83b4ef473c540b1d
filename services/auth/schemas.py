"""Request and response bodies of the auth service: bounded, strict, never echoing a secret."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, SecretStr

from libs.scopes import AREA_COVERS, SCOPES
from libs.security import Role

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 256
"""Longest password accepted (OWASP: at least 64); checked before any hashing."""


def canonical_email(value: str) -> str:
    """Return ``value`` as a valid address with a normalised domain, or raise ``ValueError``."""
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError("not a valid email address") from exc


def normalize_email(value: str) -> str:
    """Return the key accounts are looked up by (case-insensitive, whatever the input's shape)."""
    try:
        return canonical_email(value).lower()
    except ValueError:
        return value.strip().lower()


class Strict(BaseModel):
    """Request bodies: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


Email = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(canonical_email)]
NewPassword = Annotated[
    SecretStr,
    Field(
        min_length=PASSWORD_MIN_LENGTH,
        max_length=PASSWORD_MAX_LENGTH,
        description=f"{PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters.",
    ),
]
GivenPassword = Annotated[SecretStr, Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
OpaqueToken = Annotated[SecretStr, Field(min_length=1, max_length=128)]
ScopeName = Annotated[str, Field(min_length=1, max_length=64)]
"""A scope's name; the service refuses each one outside the closed set, listing the known ones."""
SCOPES_DESCRIPTION = (
    "Scopes from the closed set, "
    + ", ".join(f"`{scope}`" for scope in SCOPES)
    + ": `*` holds every area; `<area>:write` includes `<area>:read`; GET and HEAD need read, other "
    "methods write. Areas: "
    + "; ".join(f"`{area.value}` {covers}" for area, covers in AREA_COVERS.items())
    + ". A scope never lifts the key's role."
)


class UserRead(BaseModel):
    """A user, as its owner and its organizations see it."""

    id: uuid.UUID
    email: str
    name: str | None
    operator: bool


class OrganizationRead(BaseModel):
    """An organization."""

    id: uuid.UUID
    name: str


class SignupCreate(Strict):
    """Create an organization and its owner."""

    email: Email
    password: NewPassword
    name: Name | None = None
    organization_name: Name


class LoginRequest(Strict):
    """Sign in; ``organization_id`` picks the organization (default: the oldest membership)."""

    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: GivenPassword
    organization_id: uuid.UUID | None = None


class RefreshRequest(Strict):
    """Exchange a refresh token for a new pair; without one, the browser's refresh cookie is used."""

    refresh_token: Annotated[
        OpaqueToken | None,
        Field(description="Required unless the refresh cookie (with its X-CSRF-Token header) is sent."),
    ] = None


class SwitchRequest(Strict):
    """Open a session in another organization the user belongs to."""

    organization_id: uuid.UUID


class PasswordChange(Strict):
    """Change one's password; every session is signed out."""

    current_password: GivenPassword
    new_password: NewPassword


class TokenPair(BaseModel):
    """An access token (JWT, 15 minutes) and the refresh token that renews it."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
    refresh_token: Annotated[
        str | None,
        Field(description="Null in cookie mode (X-Tidewater-Client: web): it is set as an HttpOnly cookie."),
    ]
    refresh_expires_in: int


class SessionRead(TokenPair):
    """A new session: tokens plus who and where."""

    user: UserRead
    organization: OrganizationRead
    role: Role


class MembershipSummary(BaseModel):
    """One organization the user belongs to."""

    organization_id: uuid.UUID
    organization_name: str
    role: Role


class MeRead(BaseModel):
    """The caller: user, active organization, role, and every organization they may switch to."""

    user: UserRead
    organization: OrganizationRead
    role: Role
    operator: bool
    scopes: list[str]
    api_key_id: uuid.UUID | None
    memberships: list[MembershipSummary]


class MemberRead(BaseModel):
    """A member of the organization."""

    id: uuid.UUID
    user_id: uuid.UUID
    email: str
    name: str | None
    role: Role
    created_at: datetime
    updated_at: datetime


class MemberUpdate(Strict):
    """Change a member's role."""

    role: Role


class InviteStatus(StrEnum):
    """Where an invite stands."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"
    EXPIRED = "expired"


class InviteCreate(Strict):
    """Invite someone by email with a role."""

    email: Email
    role: Role = Role.MEMBER


class InviteRead(BaseModel):
    """An invite (never its token)."""

    id: uuid.UUID
    email: str
    role: Role
    status: InviteStatus
    invited_by: uuid.UUID | None
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None


class InviteCreated(InviteRead):
    """A new invite with its token, shown this once."""

    token: str


class InviteAccept(Strict):
    """Accept an invite: a new user sets a password; an existing one proves theirs."""

    token: OpaqueToken
    password: GivenPassword
    name: Name | None = None


class ApiKeyCreate(Strict):
    """Create an API key: known scopes, an explicit role no higher than yours, an optional expiry."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    scopes: Annotated[list[ScopeName], Field(min_length=1, max_length=32, description=SCOPES_DESCRIPTION)]
    role: Annotated[Role, Field(description="The key's role, required: at most the creator's own.")]
    expires_at: AwareDatetime | None = None


class ApiKeyUpdate(Strict):
    """Rename an API key."""

    name: Annotated[str, Field(min_length=1, max_length=100)]


class ApiKeyRead(BaseModel):
    """An API key as lists show it: prefix, never the secret."""

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    role: Role
    created_by: uuid.UUID
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    """A new API key with its secret, shown this once."""

    key: str


class ApiKeyToken(BaseModel):
    """An access token for an API key (the gateway caches it until shortly before it expires)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int


class SigningKeyRead(BaseModel):
    """A signing key, by its ``kid``."""

    kid: str
    created_at: datetime


class SsoRead(BaseModel):
    """Whether single sign-on is offered on the sign-in page, and its button's label."""

    enabled: bool
    name: str | None = Field(default=None, description="The provider's label, e.g. Google.")
