"""Tables the auth box owns: users, memberships, invites, sessions, API keys, signing keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from libs.db.base import created_at_field, id_field, org_id_field, timestamp_field

ROLE_CHECK = "role IN ('owner', 'admin', 'member', 'viewer')"


def _user_fk(*, ondelete: Literal["CASCADE", "SET NULL"], nullable: bool, index: bool = False) -> Any:
    return Field(default=None, foreign_key="users.id", ondelete=ondelete, nullable=nullable, index=index)


class User(SQLModel, table=True):
    """A person; global, not a tenant row (one user may belong to several organizations)."""

    __tablename__ = "users"

    id: uuid.UUID = id_field()
    email: str = Field(max_length=320)
    email_normalized: str = Field(max_length=320, unique=True)
    name: str | None = Field(default=None, max_length=200)
    password_hash: str | None = Field(default=None, max_length=512)
    """argon2id PHC string; empty until the user sets a password (operators created by CLI)."""
    operator: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    password_changed_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()


class Membership(SQLModel, table=True):
    """A user's role in one organization (tenant row)."""

    __tablename__ = "memberships"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "user_id"),
        sa.CheckConstraint(ROLE_CHECK, name="role"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True, nullable=False)
    role: str = Field(max_length=16)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class Invite(SQLModel, table=True):
    """A single-use, expiring invitation to join an organization; only the token's hash is kept."""

    __tablename__ = "invites"
    __table_args__ = (sa.CheckConstraint(ROLE_CHECK, name="role"),)

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    email: str = Field(max_length=320)
    email_normalized: str = Field(max_length=320)
    role: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    invited_by: uuid.UUID | None = _user_fk(ondelete="SET NULL", nullable=True)
    accepted_by: uuid.UUID | None = _user_fk(ondelete="SET NULL", nullable=True)
    created_at: datetime = created_at_field()
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    accepted_at: datetime | None = timestamp_field()
    revoked_at: datetime | None = timestamp_field()


class RefreshToken(SQLModel, table=True):
    """One opaque refresh token (hashed); rotation chains tokens into a family revoked as one."""

    __tablename__ = "refresh_tokens"

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True, nullable=False)
    family_id: uuid.UUID = Field(index=True, nullable=False)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = created_at_field()
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    used_at: datetime | None = timestamp_field()
    """Set when the token was rotated; presenting it again revokes its family."""
    revoked_at: datetime | None = timestamp_field()


class ApiKey(SQLModel, table=True):
    """An organization's API key: scoped, optionally expiring, stored as a SHA-256 hash."""

    __tablename__ = "api_keys"
    __table_args__ = (sa.CheckConstraint(ROLE_CHECK, name="role"),)

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16)
    """The first characters of the key, kept so people can recognise it in a list."""
    key_hash: str = Field(max_length=64, unique=True)
    scopes: list[str] = Field(default_factory=list, sa_type=JSONB, nullable=False)
    role: str = Field(max_length=16)
    created_by: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True, nullable=False)
    created_at: datetime = created_at_field()
    expires_at: datetime | None = timestamp_field()
    last_used_at: datetime | None = timestamp_field()
    revoked_at: datetime | None = timestamp_field()


class SigningKey(SQLModel, table=True):
    """An Ed25519 token-signing key; the private half is encrypted at rest."""

    __tablename__ = "signing_keys"

    id: uuid.UUID = id_field()
    kid: str = Field(max_length=64, unique=True)
    algorithm: str = Field(max_length=16)
    public_jwk: dict[str, Any] = Field(sa_type=JSONB, nullable=False)
    private_key_encrypted: str = Field(sa_type=sa.Text, nullable=False)
    created_at: datetime = created_at_field()
    retired_at: datetime | None = timestamp_field()
    """When a newer key took over signing; the key stays published until its tokens expire."""


class OidcIdentity(SQLModel, table=True):
    """A user's identity at an OpenID Connect provider: (issuer, subject) names one user, for good."""

    __tablename__ = "oidc_identities"
    __table_args__ = (sa.UniqueConstraint("issuer", "subject"),)

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True, nullable=False)
    issuer: str = Field(max_length=500)
    subject: str = Field(max_length=255)
    email: str = Field(max_length=320)
    """The address the provider gave at the last sign-in (the link holds when it changes)."""
    created_at: datetime = created_at_field()
    last_used_at: datetime | None = timestamp_field()
