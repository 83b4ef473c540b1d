"""The brand service's rules: brands, their senders, provider credentials, SMTP checks and readiness."""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio.to_thread
import structlog
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from libs import oauth_tokens
from libs.crypto import SecretBox, last4
from libs.db.base import utcnow
from libs.db.models.brand import (
    AuthMode,
    Brand,
    ImapTls,
    Mailbox,
    Provider,
    ProviderCredential,
    Sender,
    SenderKind,
    SenderOAuth,
    SmtpSecurity,
)
from libs.db.session import Database
from libs.deliverability.sending_domain import readiness_gaps
from libs.errors import Invalid
from libs.ledger import health
from libs.pagination import Page, make_page
from services.brand.errors import (
    BrandNotFound,
    CredentialExists,
    CredentialNotFound,
    PreconditionRequired,
    SenderChanged,
    SenderNotFound,
    SenderVerificationFailed,
    SmtpUnreachable,
    VersionMismatch,
)
from services.brand.repository import BrandRepository
from services.brand.schemas import (
    BrandCreate,
    BrandRead,
    BrandUpdate,
    Channel,
    ChannelReadiness,
    CredentialCreate,
    CredentialRead,
    CredentialUpdate,
    DeleteOutcome,
    Gap,
    MailboxRead,
    Readiness,
    SecretState,
    SenderCreate,
    SenderOAuthRead,
    SenderRead,
    SenderUpdate,
    VerificationResult,
)
from services.brand.smtp_probe import AddressRefused, ProbeResult, ProbeTarget, probe, resolve

log = structlog.get_logger(__name__)

DEFAULT_SMTP_PORTS = {SmtpSecurity.STARTTLS: 587, SmtpSecurity.TLS: 465, SmtpSecurity.NONE: 25}
DEFAULT_IMAP_PORTS = {ImapTls.TLS: 993, ImapTls.STARTTLS: 143, ImapTls.NONE: 143}
DEFAULT_IMAP_FOLDER = "INBOX"
_SMTP_FIELDS = ("from_address", "smtp_host", "smtp_port", "smtp_security", "smtp_username", "smtp_password")
_IMAP_FIELDS = ("imap_host", "imap_port", "imap_tls", "imap_username", "imap_password", "imap_folder")
_IMAP_CURSOR = ("imap_host", "imap_port", "imap_username", "imap_folder")
"""IMAP settings that make the mailbox another one: its cursor starts over."""
_PASSWORDS = ("smtp_password", "imap_password")
_EMAIL_ONLY = (
    "from_name",
    "from_address",
    "reply_to",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_username",
    "smtp_password",
    "hourly_limit",
    *_IMAP_FIELDS,
)
_SMS_ONLY = ("messaging_service_sid",)
_VOICE_ONLY = ("tts_voice", "audio_url")


# ETags and If-Match ------------------------------------------------------------------------


def etag(version: int) -> str:
    """The strong ``ETag`` of a row at ``version``."""
    return f'"v{version}"'


def expected_version(if_match: str | None, *, required: bool = True) -> int | None:
    """Return the version an ``If-Match`` header names.

    Raises:
        PreconditionRequired: the header is missing and ``required``.
        VersionMismatch: the header names no version we ever issued (``*`` and weak tags included).
    """
    if if_match is None or not if_match.strip():
        if required:
            raise PreconditionRequired("Send If-Match with the ETag from your last read.")
        return None
    tag = if_match.strip()
    if tag.startswith('"v') and tag.endswith('"') and tag[2:-1].isdigit() and len(tag) < 20:
        return int(tag[2:-1])
    raise VersionMismatch('If-Match must be the ETag from your last read (e.g. "v3").')


# reads ---------------------------------------------------------------------------------------


def brand_read(row: Brand) -> BrandRead:
    """Show a brand."""
    return BrandRead.model_validate(row, from_attributes=True)


def sender_read(row: Sender, mailbox: Mailbox | None = None, oauth: SenderOAuth | None = None) -> SenderRead:
    """Show a sender without its passwords (``mailbox``: its IMAP mailbox's row; ``oauth``: its OAuth tokens' row)."""
    computed = (*_PASSWORDS, "last_verification", "verified", "mailbox", "oauth")
    data = {k: getattr(row, k) for k in SenderRead.model_fields if k not in computed}
    secrets = {
        name: SecretState(
            set=getattr(row, f"{name}_encrypted") is not None, last4=getattr(row, f"{name}_last4") or None
        )
        for name in _PASSWORDS
    }
    return SenderRead(
        **data,
        **secrets,
        verified=row.verified_at is not None,
        last_verification=VerificationResult.model_validate(row.last_verification) if row.last_verification else None,
        mailbox=MailboxRead.model_validate(mailbox, from_attributes=True) if mailbox is not None else None,
        oauth=SenderOAuthRead.model_validate(oauth, from_attributes=True) if oauth is not None else None,
    )


async def oauth_for(session: AsyncSession, sender_ids: list[uuid.UUID]) -> dict[uuid.UUID, SenderOAuth]:
    """The OAuth token rows of these senders, by sender id (the tenant session's RLS scopes them)."""
    if not sender_ids:
        return {}
    query = select(SenderOAuth).where(col(SenderOAuth.sender_id).in_(sender_ids))
    return {row.sender_id: row for row in (await session.exec(query)).all()}


def credential_read(row: ProviderCredential) -> CredentialRead:
    """Show provider credentials without their secret."""
    state = SecretState(set=True, last4=row.secret_last4 or None)
    twilio = row.provider == Provider.TWILIO
    return CredentialRead(
        id=row.id,
        provider=Provider(row.provider),
        account_sid=row.account_sid,
        auth_token=state if twilio else None,
        api_key=None if twilio else state,
        model=row.model,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True)
class SmtpCheckSettings:
    """How SMTP checks run: per-operation timeout, trust store, whether private hosts are allowed."""

    timeout: float
    ssl_context: ssl.SSLContext
    allow_private: bool
    local_hostname: str = "localhost"


class BrandService:
    """Brands, senders and credentials of one organization, in domain words."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID, box: SecretBox) -> None:
        self.repo = BrandRepository(session, org_id)
        self.org_id = org_id
        self.box = box

    # brands ------------------------------------------------------------------------------

    async def brand(self, brand_id: uuid.UUID) -> Brand:
        """Return the brand.

        Raises:
            BrandNotFound: not this organization's.
        """
        row = await self.repo.get_brand(brand_id)
        if row is None:
            raise BrandNotFound("No such brand.")
        return row

    async def list_brands(self, *, cursor: str | None, limit: int, include_archived: bool) -> Page[BrandRead]:
        """Return one page of brands, newest first."""
        rows = await self.repo.list_brands(cursor=cursor, limit=limit, include_archived=include_archived)
        return make_page(rows, limit, brand_read)

    async def create_brand(self, data: BrandCreate) -> Brand:
        """Create a brand."""
        values = data.model_dump(exclude_none=True)
        row = Brand(org_id=self.org_id, **values)
        await self.repo.add(row)
        log.info("brand_created", brand_id=str(row.id))
        return row

    async def update_brand(self, brand_id: uuid.UUID, data: BrandUpdate, if_match: str | None) -> Brand:
        """Apply the fields sent, if the brand is still at the version ``If-Match`` names.

        Raises:
            BrandNotFound, PreconditionRequired, VersionMismatch, Invalid.
        """
        row = await self.brand(brand_id)
        version = expected_version(if_match)
        values = data.model_dump(exclude_unset=True)
        errors = [
            {"field": name, "message": "may not be null"}
            for name in ("name", "timezone", "proof_points", "forbidden_claims")
            if name in values and values[name] is None
        ]
        if errors:
            raise Invalid(errors=errors)
        updated = await self._claim(Brand, row, version, values)
        log.info("brand_updated", brand_id=str(brand_id), version=updated.version, fields=sorted(values))
        return updated

    async def delete_brand(self, brand_id: uuid.UUID, if_match: str | None) -> tuple[DeleteOutcome, Brand | None]:
        """Delete the brand, or archive it when a campaign still points at it.

        Raises:
            BrandNotFound, VersionMismatch.
        """
        row = await self.brand(brand_id)
        version = expected_version(if_match, required=False)
        if version is not None and version != row.version:
            raise VersionMismatch("The brand changed since you read it.", current_etag=etag(row.version))
        if await self.repo.delete_brand(brand_id):
            log.info("brand_deleted", brand_id=str(brand_id))
            return DeleteOutcome.DELETED, None
        if row.archived_at is not None:
            return DeleteOutcome.ARCHIVED, row
        archived = await self._claim(Brand, row, row.version, {"archived_at": utcnow()})
        log.info("brand_archived", brand_id=str(brand_id), reason="referenced_by_campaign")
        return DeleteOutcome.ARCHIVED, archived

    async def _claim(self, model: Any, row: Any, version: int | None, values: dict[str, Any]) -> Any:
        if version is None or version != row.version:
            raise VersionMismatch("It changed since you read it; read it again.", current_etag=etag(row.version))
        updated = await self.repo.claim_update(model, row.id, version, values)
        if updated is None:
            raise VersionMismatch("It changed while you were updating it; read it again.")
        return updated

    # senders -----------------------------------------------------------------------------

    async def sender(self, brand_id: uuid.UUID, sender_id: uuid.UUID) -> Sender:
        """Return the sender of a brand of this organization.

        Raises:
            BrandNotFound, SenderNotFound.
        """
        await self.brand(brand_id)
        row = await self.repo.get_sender(brand_id, sender_id)
        if row is None:
            raise SenderNotFound("No such sender.")
        return row

    async def list_senders(self, brand_id: uuid.UUID, *, cursor: str | None, limit: int) -> Page[SenderRead]:
        """Return one page of the brand's senders, newest first."""
        await self.brand(brand_id)
        rows = await self.repo.list_senders(brand_id, cursor=cursor, limit=limit)
        mailboxes = await self.repo.mailboxes_for([row.id for row in rows])
        oauth = await oauth_for(self.repo.session, [row.id for row in rows])
        return make_page(rows, limit, lambda row: sender_read(row, mailboxes.get(row.id), oauth.get(row.id)))

    async def show_sender(self, row: Sender) -> SenderRead:
        """Show a sender with its mailbox's state."""
        mailboxes = await self.repo.mailboxes_for([row.id])
        oauth = await oauth_for(self.repo.session, [row.id])
        return sender_read(row, mailboxes.get(row.id), oauth.get(row.id))

    async def resume_mailbox(self, brand_id: uuid.UUID, sender_id: uuid.UUID) -> Sender:
        """Read a paused mailbox again (after its login was refused), its cursor kept.

        Raises:
            BrandNotFound, SenderNotFound, Invalid (the sender reads no mailbox).
        """
        row = await self.sender(brand_id, sender_id)
        if not row.imap_host:
            raise Invalid(
                "This sender reads no mailbox.", errors=[{"field": "imap_host", "message": "not set on this sender"}]
            )
        if not await self.repo.resume_mailbox(sender_id):
            await self.repo.reset_mailbox(sender_id, folder=row.imap_folder or DEFAULT_IMAP_FOLDER, start_over=True)
        log.info("mailbox_resumed", sender_id=str(sender_id))
        return row

    async def resume_sender(self, brand_id: uuid.UUID, sender_id: uuid.UUID) -> Sender:
        """Send from a paused sender again; for the cooldown (``SDR_SENDER_PAUSE_COOLDOWN_SECONDS``) no rule pauses it.

        Raises:
            BrandNotFound, SenderNotFound, Invalid (the sender is not paused).
        """
        row = await self.sender(brand_id, sender_id)
        if row.paused_at is None:
            raise Invalid("This sender is not paused.", errors=[{"field": "paused_at", "message": "not paused"}])
        now = utcnow()
        cooldown_until = now + timedelta(seconds=health.settings().sender_pause_cooldown_seconds)
        params = {"sid": sender_id, "now": now, "cooldown_until": cooldown_until}
        await (await self.repo.session.connection()).execute(health.RESUME, params)
        await self.repo.session.refresh(row)
        log.info("sender_resumed", sender_id=str(sender_id), cooldown_until=cooldown_until.isoformat())
        return row

    async def create_sender(self, brand_id: uuid.UUID, data: SenderCreate) -> Sender:
        """Add a sender to a brand; the SMTP password is stored encrypted.

        Raises:
            BrandNotFound, Invalid (a field missing or not allowed for the kind).
        """
        await self.brand(brand_id)
        values = data.model_dump(exclude_none=True, exclude={"kind", *_PASSWORDS})
        kind = data.kind
        if kind is SenderKind.EMAIL:
            values.setdefault("smtp_security", SmtpSecurity.STARTTLS)
            values.setdefault("smtp_port", DEFAULT_SMTP_PORTS[SmtpSecurity(values["smtp_security"])])
            if values.get("imap_host"):
                values.setdefault("imap_tls", ImapTls.TLS)
                values.setdefault("imap_port", DEFAULT_IMAP_PORTS[ImapTls(values["imap_tls"])])
                values.setdefault("imap_folder", DEFAULT_IMAP_FOLDER)
        passwords = {name: getattr(data, name) for name in _PASSWORDS}
        merged = {**values, **passwords}
        _check_sender(kind, merged, merged)
        row = Sender(org_id=self.org_id, brand_id=brand_id, kind=kind.value, **values)
        for column, value in self._sealed(passwords).items():
            setattr(row, column, value)
        await self.repo.add(row)
        if row.imap_host:
            await self.repo.reset_mailbox(row.id, folder=row.imap_folder or DEFAULT_IMAP_FOLDER, start_over=True)
        log.info("sender_created", brand_id=str(brand_id), sender_id=str(row.id), kind=kind.value)
        return row

    def _sealed(self, passwords: dict[str, str | None]) -> dict[str, str | None]:
        """The ``*_encrypted`` and ``*_last4`` columns of the passwords sent (``None`` clears one)."""
        columns: dict[str, str | None] = {}
        for name, password in passwords.items():
            columns[f"{name}_encrypted"] = self.box.encrypt(password) if password is not None else None
            columns[f"{name}_last4"] = (last4(password) or None) if password is not None else None
        return columns

    async def update_sender(
        self, brand_id: uuid.UUID, sender_id: uuid.UUID, data: SenderUpdate, if_match: str | None
    ) -> Sender:
        """Apply the fields sent; changing how we log in clears the verification.

        Raises:
            BrandNotFound, SenderNotFound, PreconditionRequired, VersionMismatch, Invalid.
        """
        row = await self.sender(brand_id, sender_id)
        version = expected_version(if_match)
        values = data.model_dump(exclude_unset=True)
        kind = SenderKind(row.kind)
        current = {name: getattr(row, name) for name in SenderUpdate.model_fields if name not in _PASSWORDS}
        current |= {name: getattr(row, f"{name}_encrypted") for name in _PASSWORDS}
        current["auth_mode"] = row.auth_mode
        if values.get("imap_host") and not row.imap_host:
            values.setdefault("imap_tls", row.imap_tls or ImapTls.TLS)
            values.setdefault("imap_port", row.imap_port or DEFAULT_IMAP_PORTS[ImapTls(values["imap_tls"])])
        _check_sender(kind, {**current, **values}, values)
        changes = {k: v for k, v in values.items() if k not in _PASSWORDS}
        changes |= self._sealed({name: values[name] for name in _PASSWORDS if name in values})
        if any(name in values for name in _SMTP_FIELDS):
            changes["verified_at"] = None
        updated = await self._claim(Sender, row, version, changes)
        if any(name in values for name in _IMAP_FIELDS):
            await self._follow_mailbox(row_before=current, row=updated)
        log.info("sender_updated", sender_id=str(sender_id), version=updated.version, fields=sorted(values))
        return updated

    async def _follow_mailbox(self, *, row_before: dict[str, Any], row: Sender) -> None:
        """New IMAP settings: read the mailbox again (un-paused), from its start when it is another one."""
        if not row.imap_host:
            await self.repo.delete_mailbox(row.id)
            return
        start_over = any(row_before.get(name) != getattr(row, name) for name in _IMAP_CURSOR)
        await self.repo.reset_mailbox(row.id, folder=row.imap_folder or DEFAULT_IMAP_FOLDER, start_over=start_over)

    async def delete_sender(self, brand_id: uuid.UUID, sender_id: uuid.UUID, if_match: str | None) -> None:
        """Delete a sender.

        Raises:
            BrandNotFound, SenderNotFound, VersionMismatch.
        """
        row = await self.sender(brand_id, sender_id)
        version = expected_version(if_match, required=False)
        if version is not None and version != row.version:
            raise VersionMismatch("The sender changed since you read it.", current_etag=etag(row.version))
        await self.repo.delete_sender(sender_id)
        log.info("sender_deleted", sender_id=str(sender_id))

    # provider credentials ----------------------------------------------------------------

    async def credential(self, credential_id: uuid.UUID) -> ProviderCredential:
        """Return the credential.

        Raises:
            CredentialNotFound.
        """
        row = await self.repo.get_credential(credential_id)
        if row is None:
            raise CredentialNotFound("No such credential.")
        return row

    async def list_credentials(self, *, cursor: str | None, limit: int) -> Page[CredentialRead]:
        """Return one page of the organization's credentials."""
        return make_page(await self.repo.list_credentials(cursor=cursor, limit=limit), limit, credential_read)

    async def create_credential(self, data: CredentialCreate) -> ProviderCredential:
        """Store a provider's credentials, the secret encrypted.

        Raises:
            Invalid (fields of the other provider, or missing), CredentialExists.
        """
        provider = data.provider
        secret = _check_credential(provider, data.model_dump(exclude_none=True), creating=True)
        row = ProviderCredential(
            org_id=self.org_id,
            provider=provider.value,
            account_sid=data.account_sid,
            model=data.model,
            secret_encrypted=self.box.encrypt(secret or ""),
            secret_last4=last4(secret or ""),
        )
        if not await self.repo.add_credential(row):
            raise CredentialExists(f"This organization already has {provider.value} credentials; update them.")
        log.info("credential_created", credential_id=str(row.id), provider=provider.value)
        return row

    async def update_credential(
        self, credential_id: uuid.UUID, data: CredentialUpdate, if_match: str | None
    ) -> ProviderCredential:
        """Apply the fields sent; a new secret replaces the stored one.

        Raises:
            CredentialNotFound, PreconditionRequired, VersionMismatch, Invalid.
        """
        row = await self.credential(credential_id)
        version = expected_version(if_match)
        values = data.model_dump(exclude_unset=True)
        provider = Provider(row.provider)
        secret = _check_credential(provider, values, creating=False)
        changes = {k: v for k, v in values.items() if k in ("account_sid", "model")}
        if secret is not None:
            changes["secret_encrypted"] = self.box.encrypt(secret)
            changes["secret_last4"] = last4(secret)
        updated = await self._claim(ProviderCredential, row, version, changes)
        log.info("credential_updated", credential_id=str(credential_id), provider=provider.value)
        return updated

    async def delete_credential(self, credential_id: uuid.UUID) -> None:
        """Delete a credential.

        Raises:
            CredentialNotFound.
        """
        await self.credential(credential_id)
        await self.repo.delete_credential(credential_id)
        log.info("credential_deleted", credential_id=str(credential_id))

    # readiness ---------------------------------------------------------------------------

    async def readiness(self, brand_id: uuid.UUID, *, twilio_required: bool = True) -> Readiness:
        """Say, per channel, what is missing before a campaign on it may launch.

        Without ``twilio_required`` (outside production) missing Twilio credentials are only a
        warning: the worker writes SMS and voicemail drops to its local recorder instead.

        Raises:
            BrandNotFound.
        """
        brand = await self.brand(brand_id)
        senders = await self.repo.all_senders(brand_id)
        twilio = await self.repo.credential_for(Provider.TWILIO.value)
        openai = await self.repo.credential_for(Provider.OPENAI.value)
        channels = {
            channel: _channel_readiness(
                channel, brand, senders, twilio is not None, openai is not None, twilio_required=twilio_required
            )
            for channel in Channel
        }
        # The sending domain's SPF, DKIM, DMARC and MX, as warnings (none unless this process checks DNS).
        dns_gaps = await readiness_gaps(self.repo.session, self.org_id, senders)
        channels[Channel.EMAIL].warnings.extend(_gap(code, message) for code, message in dns_gaps)
        return Readiness(
            brand_id=brand.id,
            ready=all(c.ready for c in channels.values()),
            channels=channels,
            checked_at=utcnow(),
        )


# verification (two short transactions around a network check, none held open during it) -------


async def verify_sender(
    db: Database, org_id: uuid.UUID, box: SecretBox, brand_id: uuid.UUID, sender_id: uuid.UUID, check: SmtpCheckSettings
) -> SenderRead:
    """Log in to the sender's SMTP server, record what it answered, and show the sender.

    Raises:
        BrandNotFound, SenderNotFound, Invalid (not an email sender, or a refused address),
        SenderVerificationFailed (the server refused), SmtpUnreachable (no answer in time),
        SenderChanged (edited during the check).
    """
    async with db.tenant(org_id) as session:
        row = await BrandService(session, org_id, box).sender(brand_id, sender_id)
    if row.kind != SenderKind.EMAIL.value:
        raise Invalid("Only email senders can be verified.", errors=[{"field": "kind", "message": "not email"}])
    assert row.smtp_host is not None
    assert row.smtp_port is not None
    oauth = row.auth_mode == AuthMode.OAUTH2.value
    target = ProbeTarget(
        host=row.smtp_host,
        port=row.smtp_port,
        security=SmtpSecurity(row.smtp_security or SmtpSecurity.STARTTLS),
        username=(row.smtp_username or row.from_address) if oauth else row.smtp_username,
        password=None if oauth else box.decrypt(row.smtp_password_encrypted) if row.smtp_password_encrypted else None,
        oauth_token=await _oauth_token(db, box, row.id) if oauth else None,
    )
    server = f"{target.host}:{target.port}"
    try:
        ip = await anyio.to_thread.run_sync(
            lambda: resolve(target.host, target.port, allow_private=check.allow_private)
        )
        result = await anyio.to_thread.run_sync(
            lambda: probe(
                target, ip=ip, timeout=check.timeout, ssl_context=check.ssl_context, local_hostname=check.local_hostname
            )
        )
    except AddressRefused as exc:
        raise Invalid(
            "The SMTP host is not on a public network.",
            errors=[{"field": "smtp_host", "message": str(exc)}],
        ) from exc
    except OSError as exc:
        result = ProbeResult(False, False, "connect", None, f"cannot resolve {target.host}: {exc.strerror or exc}")
    checked_at = utcnow()
    outcome = VerificationResult(
        verified=result.verified,
        stage=result.stage,
        code=result.code,
        reply=result.reply,
        server=server,
        checked_at=checked_at,
    )
    async with db.tenant(org_id) as session:
        repo = BrandRepository(session, org_id)
        updated = await repo.record_verification(
            sender_id,
            row.version,
            result=outcome.model_dump(mode="json"),
            verified_at=checked_at if result.verified else None,
        )
        mailbox = (await repo.mailboxes_for([sender_id])).get(sender_id)
        tokens = (await oauth_for(session, [sender_id])).get(sender_id)
    if updated is None:
        raise SenderChanged("The sender changed while it was being verified; verify again.")
    log.info(
        "sender_verification",
        sender_id=str(sender_id),
        verified=result.verified,
        stage=result.stage,
        code=result.code,
    )
    if result.verified:
        return sender_read(updated, mailbox, tokens)
    details: dict[str, Any] = {"stage": result.stage, "smtp_code": result.code, "smtp_reply": result.reply}
    if not result.reachable:
        raise SmtpUnreachable(f"No answer from {server}: {result.reply}", server=server, **details)
    raise SenderVerificationFailed(
        f"{server} refused at {result.stage}: {result.code or ''} {result.reply or ''}".strip(),
        errors=[{"field": _field_for_stage(result.stage), "message": result.reply or "refused"}],
        server=server,
        **details,
    )


async def _oauth_token(db: Database, box: SecretBox, sender_id: uuid.UUID) -> str:
    """The OAuth sender's access token (renewed when near expiry), or a 422 naming ``auth_mode``."""
    engine = oauth_tokens.engine_for(db.engine.url.render_as_string(hide_password=False))
    try:
        return await anyio.to_thread.run_sync(lambda: oauth_tokens.access_token(engine, box, sender_id))
    except (oauth_tokens.NeedsReconnect, oauth_tokens.TokenUnavailable) as exc:
        raise SenderVerificationFailed(str(exc), errors=[{"field": "auth_mode", "message": str(exc)}]) from exc


def _field_for_stage(stage: str) -> str:
    return {"auth": "smtp_password", "tls": "smtp_security"}.get(stage, "smtp_host")


# rules ---------------------------------------------------------------------------------------


def _check_sender(kind: SenderKind, merged: dict[str, Any], sent: dict[str, Any]) -> None:
    """Raise :class:`Invalid` listing every field missing for ``kind`` or not allowed for it."""
    errors: list[dict[str, str]] = []

    def need(name: str, message: str = "required for this kind of sender") -> None:
        if merged.get(name) in (None, ""):
            errors.append({"field": name, "message": message})

    if kind is SenderKind.EMAIL:
        need("from_address")
        need("smtp_host")
        need("smtp_port")
        need("smtp_security")
        # A sender connected with OAuth logs in with its token (as imap/smtp_username or from_address).
        oauth = merged.get("auth_mode") == AuthMode.OAUTH2.value
        if merged.get("smtp_username") and not merged.get("smtp_password") and not oauth:
            errors.append({"field": "smtp_password", "message": "required when smtp_username is set"})
        if merged.get("imap_host"):
            if not oauth:
                need("imap_username", "required when imap_host is set")
                need("imap_password", "required when imap_host is set")
        else:
            errors.extend(
                {"field": name, "message": "needs imap_host"}
                for name in _IMAP_FIELDS
                if name != "imap_host" and sent.get(name) is not None
            )
        allowed = set(_EMAIL_ONLY)
    elif kind is SenderKind.SMS:
        if not merged.get("phone_number") and not merged.get("messaging_service_sid"):
            errors.append({"field": "phone_number", "message": "give a phone_number or a messaging_service_sid"})
        allowed = {"phone_number", "daily_limit", *_SMS_ONLY}
    else:
        need("phone_number", "the caller id (E.164) is required for a voice sender")
        if not merged.get("tts_voice") and not merged.get("audio_url"):
            errors.append({"field": "tts_voice", "message": "give a tts_voice or an audio_url"})
        allowed = {"phone_number", "daily_limit", *_VOICE_ONLY}
    allowed |= {"label", "daily_limit"}
    errors.extend(
        {"field": name, "message": f"not used by a {kind.value} sender"}
        for name, value in sent.items()
        if value is not None and name not in allowed
    )
    if errors:
        raise Invalid("The sender is incomplete or has fields of another kind.", errors=errors)


def _check_credential(provider: Provider, values: dict[str, Any], *, creating: bool) -> str | None:
    """Return the secret sent (if any); raise :class:`Invalid` listing every misplaced or missing field."""
    errors: list[dict[str, str]] = []
    required: tuple[str, ...]
    if provider is Provider.TWILIO:
        secret_field, foreign = "auth_token", ("api_key", "model")
        required = ("account_sid", "auth_token") if creating else ()
    else:
        secret_field, foreign = "api_key", ("account_sid", "auth_token")
        required = ("api_key",) if creating else ()
    errors.extend({"field": name, "message": "required"} for name in required if not values.get(name))
    errors.extend(
        {"field": name, "message": f"not used by {provider.value} credentials"}
        for name in foreign
        if values.get(name) is not None
    )
    if not creating:
        errors.extend(
            {"field": name, "message": "may not be null"}
            for name in ("account_sid", secret_field)
            if name in values and values[name] is None and (name != "account_sid" or provider is Provider.TWILIO)
        )
    if errors:
        raise Invalid("The credentials are incomplete or mix providers.", errors=errors)
    secret = values.get(secret_field)
    return str(secret) if secret is not None else None


def _gap(code: str, message: str, field: str | None = None) -> Gap:
    return Gap(code=code, message=message, field=field)


def _channel_readiness(
    channel: Channel, brand: Brand, senders: Any, has_twilio: bool, has_openai: bool, *, twilio_required: bool = True
) -> ChannelReadiness:
    missing: list[Gap] = []
    warnings: list[Gap] = []
    no_twilio = _gap(
        "twilio_credentials",
        "Add Twilio credentials (/api/credentials)."
        if twilio_required
        else "No Twilio credentials: messages go to the local recorder, not to anyone's phone.",
    )
    if brand.archived_at is not None:
        missing.append(_gap("brand_archived", "The brand is archived."))
    if channel is Channel.EMAIL:
        if not (brand.postal_address or "").strip():
            missing.append(
                _gap("postal_address", "Emails need the brand's postal address (CAN-SPAM).", "postal_address")
            )
        if not (brand.opt_out_email or "").strip():
            missing.append(_gap("opt_out_email", "Emails need opt-out wording.", "opt_out_email"))
        email_senders = [s for s in senders if s.kind == SenderKind.EMAIL.value]
        if not email_senders:
            missing.append(_gap("email_sender", "Add an email sender."))
        elif not any(s.verified_at is not None for s in email_senders):
            missing.append(_gap("verified_email_sender", "Verify an email sender (POST .../verify)."))
    elif channel is Channel.SMS:
        if not any(s.kind == SenderKind.SMS.value for s in senders):
            missing.append(_gap("sms_sender", "Add an SMS number or messaging service."))
        if not has_twilio:
            (missing if twilio_required else warnings).append(no_twilio)
        if not (brand.opt_out_sms or "").strip():
            missing.append(_gap("opt_out_sms", "SMS need opt-out wording (e.g. Reply STOP to opt out).", "opt_out_sms"))
    else:
        if not any(s.kind == SenderKind.VOICE.value for s in senders):
            missing.append(_gap("voice_sender", "Add a voice caller id."))
        if not has_twilio:
            (missing if twilio_required else warnings).append(no_twilio)
        if not (brand.opt_out_voicemail or "").strip():
            missing.append(_gap("opt_out_voicemail", "Voicemails need spoken opt-out wording.", "opt_out_voicemail"))
    if not has_openai:
        warnings.append(_gap("openai_credentials", "No OpenAI key: messages use the templates unpersonalised."))
    return ChannelReadiness(ready=not missing, missing=missing, warnings=warnings)
