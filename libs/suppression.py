"""Who may not be contacted: contact normalisation, erasure hashes, and the suppression query.

Scope rules: an SMS STOP (channel ``sms``) covers SMS and
voicemail; an email unsubscribe (channel ``email``) covers email; channel ``all`` covers
everything; a ``domain`` suppression covers every address at that exact domain; a ``hash``
suppression (kept after a GDPR erasure) covers the email or phone whose HMAC it holds, on
every channel. An erased lead is suppressed everywhere. An organization may make every
opt-out global (``every_opt_out_global=True``).

Normalisation policy: emails are validated with email-validator (no DNS) and compared in
lower case, with no plus-address or dot folding (``a+x@`` and ``a@`` are different
addresses); phones are E.164; domains are lower-case IDNA.

The statements here are plain SQLAlchemy Core, so the campaign service (async sessions)
and the worker (sync sessions) run the very same SQL::

    hits = await find_suppressed(session, org_id=org, lead_ids=[lead.id], channel="sms", key=key)
    hits = find_suppressed_sync(session, org_id=org, lead_ids=[lead.id], channel="sms", key=key)
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers
import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import URL, Connection, Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.models.leads import Lead, Suppression, SuppressionChannel, SuppressionKind, SuppressionReason
from libs.db.session import scope_to_system
from libs.settings import CommonSettings

LEADS: sa.Table = Lead.__table__  # type: ignore[attr-defined]
SUPPRESSIONS: sa.Table = Suppression.__table__  # type: ignore[attr-defined]

CHANNELS = ("email", "sms", "voicemail")
"""The channels a message can go out on."""

COVERED_BY: dict[str, tuple[str, ...]] = {
    "email": ("email", "all"),
    "sms": ("sms", "all"),
    "voicemail": ("voicemail", "sms", "all"),
}
"""For each send channel, the suppression channels that block it."""

ERASED_SOURCE = "lead erased"


class InvalidContact(ValueError):
    """An email, phone or domain that cannot be normalised; ``str()`` says why."""


# --------------------------------------------------------------------------- normalisation


def validate_email_address(value: str) -> tuple[str, str]:
    """Return ``(email, email_normalized)`` for ``value``, or raise :class:`InvalidContact`.

    ``email`` is email-validator's normalised form (case of the local part kept);
    ``email_normalized`` is the lower-case key used for dedupe and suppression.
    """
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidContact(str(exc)) from exc
    email = result.normalized
    if len(email) > 320:
        raise InvalidContact("The email address is too long.")
    return email, email.lower()


def normalize_email(value: str) -> str:
    """Return the lower-case normalised form of an email address (raise :class:`InvalidContact`)."""
    return validate_email_address(value)[1]


def normalize_phone(value: str, region: str | None = "US") -> str:
    """Return ``value`` as an E.164 number, parsed with ``region`` as the default country."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidContact(f"The phone number cannot be parsed: {exc}.") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidContact("The phone number is not a valid number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_domain(value: str) -> str:
    """Return a domain (``acme.com``, ``@acme.com`` or ``ACME.com``) in lower-case IDNA form."""
    domain = value.strip().lstrip("@").rstrip(".")
    if not domain or "@" in domain:
        raise InvalidContact("The domain is not valid.")
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).ascii_domain.lower()
    except EmailNotValidError as exc:
        raise InvalidContact(str(exc).replace("after the @-sign ", "")) from exc


def email_domain(email_normalized: str) -> str:
    """Return the domain part of a normalised address."""
    return email_normalized.rpartition("@")[2]


def guess_kind(value: str) -> SuppressionKind:
    """Say whether ``value`` looks like an email, a domain or a phone number."""
    text = value.strip()
    if text.startswith("@") or ("@" not in text and any(c.isalpha() for c in text) and "." in text):
        return SuppressionKind.DOMAIN
    if "@" in text:
        return SuppressionKind.EMAIL
    return SuppressionKind.PHONE


def normalize_value(kind: SuppressionKind | str, value: str, region: str | None = "US") -> str:
    """Normalise ``value`` for a suppression of ``kind`` (raise :class:`InvalidContact`)."""
    kind = SuppressionKind(kind)
    if kind is SuppressionKind.EMAIL:
        return normalize_email(value)
    if kind is SuppressionKind.PHONE:
        return normalize_phone(value, region)
    if kind is SuppressionKind.DOMAIN:
        return normalize_domain(value)
    text = value.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise InvalidContact("A hash is 64 hexadecimal characters.")
    return text


# --------------------------------------------------------------------------- erasure hashes


def hash_key(secret: str | bytes) -> bytes:
    """Derive an erasure-hash key from a secret (the first stored key; see :func:`load_hash_key`)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, b"tidewater/suppression-hash/v1", hashlib.sha256).digest()


ERASURE_KEY_NAME = "suppression-hash"
_stored_keys: dict[tuple[URL, str], bytes] = {}


def load_hash_key(conn: Connection, settings: CommonSettings) -> bytes:
    """Return the key of erasure hashes from ``system_secrets``, storing it on first use (sync ``conn``).

    The key must never change: every erased person is known only by an HMAC made with it,
    so a new key would let them be contacted again. It is therefore stored once, sealed by
    the deployment's :class:`SecretBox`, instead of being derived from ``SDR_SECRET_KEY`` on
    each start; a rotation of that secret re-seals the stored key (the old secret, kept in
    ``SDR_ENCRYPTION_KEYS``, opens it) and leaves the key itself alone. The first value is
    the derivation hashes were made with before the key was stored, so they keep matching.

    Raises:
        SecretBoxError: the stored key is sealed with a secret the settings no longer hold.
    """
    from libs.crypto import SecretBox  # cryptography costs a worker ~6 MB: loaded only where a key is opened

    box = SecretBox.from_settings(settings)
    bound = ERASURE_KEY_NAME.encode()
    scope_to_system(conn)
    first = box.encrypt(hash_key(settings.secret_key.get_secret_value()).hex(), associated_data=bound)
    conn.execute(
        sa.text(
            "INSERT INTO system_secrets (name, value, created_at, updated_at) VALUES (:name, :value, now(), now())"
            " ON CONFLICT (name) DO NOTHING"
        ),
        {"name": ERASURE_KEY_NAME, "value": first},
    )
    sealed = conn.execute(
        sa.text("SELECT value FROM system_secrets WHERE name = :name"), {"name": ERASURE_KEY_NAME}
    ).scalar_one()
    key = bytes.fromhex(box.decrypt(sealed, associated_data=bound))
    if box.needs_rotation(sealed):
        conn.execute(
            sa.text("UPDATE system_secrets SET value = :new, updated_at = now() WHERE name = :name AND value = :old"),
            {"name": ERASURE_KEY_NAME, "old": sealed, "new": box.rotate(sealed, associated_data=bound)},
        )
    return key


def has_erasure_hashes(session: Session, org_id: uuid.UUID) -> bool:
    """Whether ``org_id`` has erased anyone (only then must a check compute erasure hashes)."""
    stmt = sa.select(
        sa.exists().where(SUPPRESSIONS.c.org_id == org_id, SUPPRESSIONS.c.kind == SuppressionKind.HASH.value)
    )
    return bool(session.connection().execute(stmt).scalar())


def stored_hash_key(engine: Engine, settings: CommonSettings) -> bytes:
    """:func:`load_hash_key` in its own transaction, once per process and database."""
    cache_key = (engine.url, settings.secret_key.get_secret_value())
    if cache_key not in _stored_keys:
        with engine.begin() as conn:
            _stored_keys[cache_key] = load_hash_key(conn, settings)
    return _stored_keys[cache_key]


async def stored_hash_key_async(engine: AsyncEngine, settings: CommonSettings) -> bytes:
    """:func:`load_hash_key` on an async engine (a service's startup)."""
    async with engine.begin() as conn:
        return await conn.run_sync(load_hash_key, settings)


def contact_hash(key: bytes, kind: str, normalized: str) -> str:
    """Return the HMAC-SHA256 (hex) of a normalised email or phone; ``kind`` is ``email`` or ``phone``."""
    return hmac.new(key, f"{kind}:{normalized}".encode(), hashlib.sha256).hexdigest()


def _hmac_sql(key: bytes, kind: str, column: Any) -> ColumnElement[str]:
    """The same HMAC as :func:`contact_hash`, computed by PostgreSQL (``sha256`` is built in)."""
    block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    ipad = bytes(b ^ 0x36 for b in block)
    opad = bytes(b ^ 0x5C for b in block)
    message = sa.func.convert_to(sa.literal(f"{kind}:") + column, sa.literal("UTF8"))
    inner = sa.func.sha256(sa.literal(ipad, sa.LargeBinary).op("||", return_type=sa.LargeBinary)(message))
    outer = sa.func.sha256(sa.literal(opad, sa.LargeBinary).op("||", return_type=sa.LargeBinary)(inner))
    return sa.func.encode(outer, sa.literal("hex"), type_=sa.String)


# --------------------------------------------------------------------------- the query


@dataclass(frozen=True, slots=True)
class SuppressionHit:
    """Why one lead may not be contacted on a channel."""

    lead_id: uuid.UUID
    suppression_id: uuid.UUID | None
    channel: str
    kind: str
    reason: str
    source: str | None


def covering_channels(channel: str | None, *, every_opt_out_global: bool = False) -> tuple[str, ...]:
    """Return the suppression channels that block a send on ``channel`` (``None``: any channel)."""
    if channel is None or every_opt_out_global:
        return tuple(c.value for c in SuppressionChannel)
    if channel not in COVERED_BY:
        raise ValueError(f"unknown channel {channel!r}")
    return COVERED_BY[channel]


def _candidates(leads: Any, key: bytes | None) -> list[tuple[str, ColumnElement[Any]]]:
    """Each (kind, value expression) a lead can be matched on (no erasure hashes when ``key`` is None)."""
    candidates = [
        (SuppressionKind.EMAIL.value, leads.c.email_normalized),
        (SuppressionKind.PHONE.value, leads.c.phone),
        (SuppressionKind.DOMAIN.value, sa.func.split_part(leads.c.email_normalized, "@", 2)),
    ]
    if key is not None:
        candidates.append((SuppressionKind.HASH.value, _hmac_sql(key, "email", leads.c.email_normalized)))
        candidates.append((SuppressionKind.HASH.value, _hmac_sql(key, "phone", leads.c.phone)))
    return candidates


def suppressed_clause(
    *,
    org_id: uuid.UUID,
    channel: str | None,
    key: bytes,
    leads: Any = None,
    every_opt_out_global: bool = False,
    hashes: bool = True,
) -> ColumnElement[bool]:
    """A boolean SQL condition on ``leads`` (default: the ``leads`` table): the lead is suppressed.

    Built from uncorrelated ``IN`` subqueries so PostgreSQL hashes each suppression set once:
    usable in set-based statements over many leads (enroll by filter, import marking). ``leads``
    may be any table with ``email_normalized`` and ``phone`` columns (``erased_at`` if it has one);
    ``hashes=False`` skips the erasure-hash match when the caller has checked it already.
    """
    leads = leads if leads is not None else LEADS
    s = SUPPRESSIONS
    covering = covering_channels(channel, every_opt_out_global=every_opt_out_global)
    conditions: list[ColumnElement[bool]] = []
    if "erased_at" in leads.c:
        conditions.append(leads.c.erased_at.is_not(None))
    for kind, value in _candidates(leads, key):
        if kind == SuppressionKind.HASH.value and not hashes:
            continue
        values = sa.select(s.c.value).where(s.c.org_id == org_id, s.c.kind == kind, s.c.channel.in_(covering))
        conditions.append(value.in_(values))
    return sa.or_(*conditions)


def suppressed_query(
    *,
    org_id: uuid.UUID,
    lead_ids: Sequence[uuid.UUID],
    channel: str | None,
    key: bytes | None,
    every_opt_out_global: bool = False,
) -> sa.Select[Any]:
    """Select ``(lead_id, suppression_id, channel, kind, reason, source)``: every reason each lead is suppressed."""
    leads = LEADS
    s = SUPPRESSIONS
    covering = covering_channels(channel, every_opt_out_global=every_opt_out_global)
    match = sa.or_(*[sa.and_(s.c.kind == kind, s.c.value == value) for kind, value in _candidates(leads, key)])
    ids = list(lead_ids)
    by_suppression = (
        sa.select(
            leads.c.id.label("lead_id"),
            s.c.id.label("suppression_id"),
            s.c.channel,
            s.c.kind,
            s.c.reason,
            s.c.source,
        )
        .select_from(leads.join(s, sa.and_(s.c.org_id == leads.c.org_id, s.c.channel.in_(covering), match)))
        .where(leads.c.org_id == org_id, leads.c.id.in_(ids))
    )
    by_erasure = sa.select(
        leads.c.id.label("lead_id"),
        sa.null().label("suppression_id"),
        sa.literal(SuppressionChannel.ALL.value).label("channel"),
        sa.literal(SuppressionKind.HASH.value).label("kind"),
        sa.literal(SuppressionReason.ERASURE.value).label("reason"),
        sa.literal(ERASED_SOURCE).label("source"),
    ).where(leads.c.org_id == org_id, leads.c.id.in_(ids), leads.c.erased_at.is_not(None))
    return sa.select(sa.union_all(by_suppression, by_erasure).subquery())


def _hits(rows: Iterable[Any]) -> dict[uuid.UUID, list[SuppressionHit]]:
    found: dict[uuid.UUID, list[SuppressionHit]] = {}
    for row in rows:
        found.setdefault(row.lead_id, []).append(
            SuppressionHit(row.lead_id, row.suppression_id, row.channel, row.kind, row.reason, row.source)
        )
    return found


async def find_suppressed(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    lead_ids: Sequence[uuid.UUID],
    channel: str | None,
    key: bytes | None,
    every_opt_out_global: bool = False,
) -> dict[uuid.UUID, list[SuppressionHit]]:
    """Return, for each suppressed lead among ``lead_ids``, why it may not be reached on ``channel``."""
    if not lead_ids:
        return {}
    stmt = suppressed_query(
        org_id=org_id, lead_ids=lead_ids, channel=channel, key=key, every_opt_out_global=every_opt_out_global
    )
    return _hits((await (await session.connection()).execute(stmt)).all())


def find_suppressed_sync(
    session: Session,
    *,
    org_id: uuid.UUID,
    lead_ids: Sequence[uuid.UUID],
    channel: str | None,
    key: bytes | None,
    every_opt_out_global: bool = False,
) -> dict[uuid.UUID, list[SuppressionHit]]:
    """Synchronous twin of :func:`find_suppressed` (workers, ticker); ``key`` None skips erasure hashes."""
    if not lead_ids:
        return {}
    stmt = suppressed_query(
        org_id=org_id, lead_ids=lead_ids, channel=channel, key=key, every_opt_out_global=every_opt_out_global
    )
    return _hits(session.connection().execute(stmt).all())


# --------------------------------------------------------------------------- writes


def suppress_statement(
    *,
    org_id: uuid.UUID,
    channel: SuppressionChannel | str,
    kind: SuppressionKind | str,
    value: str,
    reason: SuppressionReason | str,
    source: str | None = None,
    created_by: uuid.UUID | None = None,
) -> Any:
    """An idempotent ``INSERT`` of one suppression (``value`` already normalised); returns its id if new."""
    return (
        pg_insert(SUPPRESSIONS)
        .values(
            id=uuid.uuid4(),
            org_id=org_id,
            channel=SuppressionChannel(channel).value,
            kind=SuppressionKind(kind).value,
            value=value,
            reason=SuppressionReason(reason).value,
            source=source[:200] if source else None,
            created_by=created_by,
            created_at=sa.func.now(),
        )
        .on_conflict_do_nothing(index_elements=["org_id", "kind", "value", "channel"])
        .returning(SUPPRESSIONS.c.id)
    )


def refresh_lead_status_statement(*, org_id: uuid.UUID, key: bytes, lead_ids: Sequence[uuid.UUID] | None = None) -> Any:
    """An ``UPDATE`` setting ``leads.status`` to ``suppressed``/``active`` from the suppression list.

    Run it after adding or removing suppressions (``lead_ids`` narrows it); erased leads stay erased.
    """
    leads = LEADS
    suppressed = suppressed_clause(org_id=org_id, channel=None, key=key)
    new_status = sa.case((suppressed, "suppressed"), else_="active")
    conditions = [leads.c.org_id == org_id, leads.c.erased_at.is_(None), leads.c.status != new_status]
    if lead_ids is not None:
        conditions.append(leads.c.id.in_(list(lead_ids)))
    return sa.update(leads).where(*conditions).values(status=new_status, updated_at=sa.func.now())
