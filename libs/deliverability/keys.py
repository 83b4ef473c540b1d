"""Where DKIM keys and signing choices are stored, for the brand box (async) and the worker (sync).

Every statement filters by ``org_id`` (row-level security is the second lock). The worker finds
the key of a message from the message's organization and its From domain, and skips it when the
brand's email sender with that From address says its own server signs.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.base import utcnow
from libs.db.models.deliverability import DkimKey, DkimSigner, SenderSigning


def domain_of(address: str) -> str:
    """The domain of an email address, lower-cased, without a final dot."""
    return address.rpartition("@")[2].strip().rstrip(".").lower()


async def key_for(session: AsyncSession, org_id: uuid.UUID, domain: str) -> DkimKey | None:
    """The organization's key for ``domain``, or None."""
    query = select(DkimKey).where(DkimKey.org_id == org_id, DkimKey.domain == domain)
    return (await session.exec(query)).first()


async def signer_of(session: AsyncSession, org_id: uuid.UUID, sender_id: uuid.UUID) -> DkimSigner:
    """Who signs the sender's mail (Tidewater unless the sender said otherwise)."""
    query = select(SenderSigning.dkim).where(SenderSigning.org_id == org_id, SenderSigning.sender_id == sender_id)
    found = (await session.exec(query)).first()
    return DkimSigner(found) if found else DkimSigner.TIDEWATER


async def set_signer(session: AsyncSession, org_id: uuid.UUID, sender_id: uuid.UUID, signer: DkimSigner) -> None:
    """Record who signs the sender's mail."""
    statement = insert(SenderSigning).values(org_id=org_id, sender_id=sender_id, dkim=signer.value, updated_at=utcnow())
    statement = statement.on_conflict_do_update(
        index_elements=[col(SenderSigning.sender_id)],
        set_={"dkim": statement.excluded.dkim, "updated_at": statement.excluded.updated_at},
    )
    await session.exec(statement)


async def put_key(
    session: AsyncSession,
    org_id: uuid.UUID,
    domain: str,
    *,
    selector: str,
    private_key_encrypted: str,
    public_key: str,
    created_at: datetime,
) -> DkimKey:
    """Store the domain's key pair; a rotation keeps the one it replaces as the previous key."""
    values = {
        "selector": selector,
        "private_key_encrypted": private_key_encrypted,
        "public_key": public_key,
        "created_at": created_at,
    }
    statement = insert(DkimKey).values(id=uuid.uuid4(), org_id=org_id, domain=domain, **values)
    replaced = {
        "previous_selector": DkimKey.__table__.c.selector,  # type: ignore[attr-defined]
        "previous_private_key_encrypted": DkimKey.__table__.c.private_key_encrypted,  # type: ignore[attr-defined]
    }
    await session.exec(
        statement.on_conflict_do_update(
            index_elements=[col(DkimKey.org_id), col(DkimKey.domain)], set_={**values, **replaced}
        )
    )
    query = select(DkimKey).where(DkimKey.org_id == org_id, DkimKey.domain == domain)
    return (await session.exec(query.execution_options(populate_existing=True))).one()


SIGNING_KEY = sa.text(
    """
    SELECT k.org_id, k.domain, k.selector, k.private_key_encrypted,
           CASE WHEN k.created_at > now() - make_interval(secs => :overlap) THEN k.previous_selector END
             AS previous_selector,
           CASE WHEN k.created_at > now() - make_interval(secs => :overlap) THEN k.previous_private_key_encrypted END
             AS previous_private_key_encrypted
    FROM messages m
    JOIN campaigns c ON c.id = m.campaign_id AND c.org_id = m.org_id
    JOIN dkim_keys k ON k.org_id = m.org_id AND k.domain = :domain
    WHERE m.id = :message_id
      AND NOT EXISTS (
        SELECT 1 FROM senders s
        JOIN sender_signing g ON g.sender_id = s.id AND g.org_id = s.org_id
        WHERE s.org_id = m.org_id AND s.brand_id = c.brand_id AND s.kind = 'email'
          AND lower(s.from_address) = lower(:from_address) AND g.dkim = 'own_server'
      )
    """
)
"""The key the worker signs message ``:message_id`` from ``:from_address`` (domain ``:domain``) with, if any,
and the key it replaced when the rotation is less than ``:overlap`` seconds old."""
