"""Every statement of the poller on ``mailboxes``: leases, the cursor, pauses (system sessions).

A lease is a row's ``lease_owner`` and ``lease_expires_at``. A poller claims free rows with
``FOR UPDATE SKIP LOCKED`` (two pollers never take the same row in one pass) and may take a
row over only once its lease expired. Every move of the cursor is fenced by the owner: a poller
that lost its lease (stalled past it) moves nothing, and its transaction rolls back with the
inbound event it was about to store.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from libs.db.base import utcnow
from libs.db.models.brand import Mailbox, MailboxState, Sender, SenderKind
from libs.db.models.inbound import InboundEvent, InboundStatus

MAILBOXES: sa.Table = Mailbox.__table__  # type: ignore[attr-defined]
SENDERS: sa.Table = Sender.__table__  # type: ignore[attr-defined]
EVENTS: sa.Table = InboundEvent.__table__  # type: ignore[attr-defined]
DEFAULT_FOLDER = "INBOX"


class LeaseLost(RuntimeError):
    """This poller no longer holds the mailbox's lease (or it was paused, or its cursor was reset)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A mailbox as one reader needs it: where to log in, and where its cursor stands."""

    mailbox_id: uuid.UUID
    org_id: uuid.UUID
    sender_id: uuid.UUID
    host: str | None
    port: int | None
    tls: str | None
    username: str | None
    password_encrypted: str | None
    folder: str
    uidvalidity: int | None
    last_uid: int
    last_event_id: uuid.UUID | None
    state: str
    auth_mode: str = "password"
    """``oauth2``: log in with XOAUTH2 and the sender's access token (``libs.oauth_tokens``)."""
    from_address: str | None = None
    """The XOAUTH2 user when the sender has no IMAP username."""

    @property
    def login(self) -> tuple[object, ...]:
        """What, when it changes, means the reader must log in again."""
        return (self.host, self.port, self.tls, self.username, self.password_encrypted, self.folder, self.auth_mode)


def sync(session: Session) -> int:
    """Give every email sender with an IMAP host a mailbox row; return how many were added."""
    folder = sa.func.coalesce(SENDERS.c.imap_folder, DEFAULT_FOLDER)
    missing = (
        sa.select(SENDERS.c.org_id, SENDERS.c.id, folder)
        .where(SENDERS.c.kind == SenderKind.EMAIL.value, SENDERS.c.imap_host.is_not(None))
        .where(~sa.exists().where(MAILBOXES.c.sender_id == SENDERS.c.id))
    )
    rows = session.execute(missing).all()
    if not rows:
        return 0
    now = utcnow()
    values = [
        {"id": uuid.uuid4(), "org_id": org, "sender_id": sender, "folder": f, "created_at": now, "updated_at": now}
        for org, sender, f in rows
    ]
    stmt = pg_insert(MAILBOXES).values(values).on_conflict_do_nothing(index_elements=["sender_id"])
    return _count(session.execute(stmt))


def claim(session: Session, owner: str, *, lease: float, limit: int, skip: Sequence[uuid.UUID] = ()) -> list[uuid.UUID]:
    """Take up to ``limit`` active mailboxes whose lease is free or expired; return their ids."""
    now = utcnow()
    free = (
        sa.select(MAILBOXES.c.id)
        .join(SENDERS, SENDERS.c.id == MAILBOXES.c.sender_id)
        .where(MAILBOXES.c.state == MailboxState.ACTIVE.value, SENDERS.c.imap_host.is_not(None))
        .where(sa.or_(MAILBOXES.c.lease_expires_at.is_(None), MAILBOXES.c.lease_expires_at < now))
        .order_by(MAILBOXES.c.lease_expires_at.asc().nulls_first(), MAILBOXES.c.id)
        .limit(limit)
        .with_for_update(of=MAILBOXES, skip_locked=True)
    )
    if skip:
        free = free.where(MAILBOXES.c.id.not_in(list(skip)))
    ids = [row[0] for row in session.execute(free)]
    if not ids:
        return []
    session.execute(
        sa.update(MAILBOXES)
        .where(MAILBOXES.c.id.in_(ids))
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease))
    )
    return ids


def renew(session: Session, mailbox_id: uuid.UUID, owner: str, *, lease: float) -> bool:
    """Extend this poller's lease; False when it is no longer ours or the mailbox was paused."""
    result = session.execute(
        sa.update(MAILBOXES)
        .where(
            MAILBOXES.c.id == mailbox_id,
            MAILBOXES.c.lease_owner == owner,
            MAILBOXES.c.state == MailboxState.ACTIVE.value,
        )
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease))
    )
    return _count(result) > 0


def release(session: Session, mailbox_id: uuid.UUID, owner: str) -> None:
    """Give the lease back (a clean stop), so another poller may take the mailbox at once."""
    session.execute(
        sa.update(MAILBOXES)
        .where(MAILBOXES.c.id == mailbox_id, MAILBOXES.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


def target(session: Session, mailbox_id: uuid.UUID) -> Target | None:
    """Return the mailbox with its sender's IMAP settings, or None when it is gone."""
    query = (
        sa.select(
            MAILBOXES.c.id.label("mailbox_id"),
            MAILBOXES.c.org_id,
            MAILBOXES.c.sender_id,
            SENDERS.c.imap_host.label("host"),
            SENDERS.c.imap_port.label("port"),
            SENDERS.c.imap_tls.label("tls"),
            SENDERS.c.imap_username.label("username"),
            SENDERS.c.imap_password_encrypted.label("password_encrypted"),
            MAILBOXES.c.folder,
            MAILBOXES.c.uidvalidity,
            MAILBOXES.c.last_uid,
            MAILBOXES.c.last_event_id,
            MAILBOXES.c.state,
            SENDERS.c.auth_mode,
            SENDERS.c.from_address,
        )
        .join(SENDERS, SENDERS.c.id == MAILBOXES.c.sender_id)
        .where(MAILBOXES.c.id == mailbox_id)
    )
    row = session.execute(query).first()
    return Target(**row._asdict()) if row is not None else None


def unfinished(session: Session, event_id: uuid.UUID | None) -> bool:
    """Whether ``event_id`` is stored and not yet acted on (its job may have been lost with a killed poller)."""
    if event_id is None:
        return False
    query = sa.select(EVENTS.c.id).where(EVENTS.c.id == event_id, EVENTS.c.status == InboundStatus.RECEIVED.value)
    return session.execute(query).first() is not None


def _owned(mailbox_id: uuid.UUID, owner: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        MAILBOXES.c.id == mailbox_id,
        MAILBOXES.c.lease_owner == owner,
        MAILBOXES.c.state == MailboxState.ACTIVE.value,
    )


def start_over(session: Session, mailbox_id: uuid.UUID, owner: str, *, uidvalidity: int) -> None:
    """Point the cursor at the start of a folder whose UIDVALIDITY is new (or first seen).

    Raises:
        LeaseLost: the lease is no longer ours.
    """
    result = session.execute(
        sa.update(MAILBOXES)
        .where(_owned(mailbox_id, owner))
        .values(uidvalidity=uidvalidity, last_uid=0, last_event_id=None, updated_at=utcnow())
    )
    if not _count(result):
        raise LeaseLost(str(mailbox_id))


def advance(
    session: Session, mailbox_id: uuid.UUID, owner: str, *, uidvalidity: int, uid: int, event_id: uuid.UUID | None
) -> None:
    """Move the cursor past ``uid`` in the caller's transaction (the one storing that message).

    Raises:
        LeaseLost: the lease is no longer ours, the cursor moved elsewhere, or the mailbox was paused.
    """
    result = session.execute(
        sa.update(MAILBOXES)
        .where(_owned(mailbox_id, owner), MAILBOXES.c.uidvalidity == uidvalidity, MAILBOXES.c.last_uid < uid)
        .values(last_uid=uid, last_event_id=event_id, last_polled_at=utcnow(), last_error=None)
    )
    if not _count(result):
        raise LeaseLost(str(mailbox_id))


def polled(session: Session, mailbox_id: uuid.UUID, owner: str, *, error: str | None = None) -> None:
    """Record a finished look at the mailbox (or the error that ended it)."""
    values: dict[str, object] = {"last_error": error[:500] if error else None}
    if error is None:
        values["last_polled_at"] = utcnow()
    session.execute(sa.update(MAILBOXES).where(_owned(mailbox_id, owner)).values(**values))


def pause(session: Session, mailbox_id: uuid.UUID, owner: str, *, reason: str) -> None:
    """Stop reading the mailbox until a member resumes it; the lease is given back."""
    now = utcnow()
    session.execute(
        sa.update(MAILBOXES)
        .where(_owned(mailbox_id, owner))
        .values(
            state=MailboxState.PAUSED.value,
            paused_reason=reason[:500],
            paused_at=now,
            last_error=reason[:500],
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )


def _count(result: object) -> int:
    """Rows an UPDATE or INSERT touched."""
    return int(result.rowcount or 0) if isinstance(result, CursorResult) else 0
