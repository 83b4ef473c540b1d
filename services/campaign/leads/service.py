"""The rules of leads, imports and suppressions, in domain words (create, erase, suppress, import)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import phonenumbers
import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from libs import jobs as registry
from libs.db.base import utcnow
from libs.db.models.leads import (
    ImportStatus,
    Lead,
    LeadImport,
    LeadStatus,
    Suppression,
    SuppressionChannel,
    SuppressionKind,
    SuppressionReason,
)
from libs.errors import Invalid
from libs.pagination import Page, make_page
from libs.queue import PendingJobs
from libs.security import Principal
from libs.suppression import (
    SUPPRESSIONS,
    InvalidContact,
    contact_hash,
    find_suppressed,
    guess_kind,
    normalize_value,
)
from services.campaign.leads import filestore
from services.campaign.leads.contact import ContactValidator, normalize_timezone
from services.campaign.leads.csvfile import FileRejected, detect_format, open_rows
from services.campaign.leads.erasure import Contact, ErasureRepository
from services.campaign.leads.errors import (
    ContactErased,
    DuplicateLead,
    ImportNotFound,
    LeadErased,
    LeadNotFound,
    SuppressionLocked,
    SuppressionNotFound,
)
from services.campaign.leads.repository import (
    ImportRepository,
    LeadFilters,
    LeadRepository,
    SuppressionRepository,
    execute,
)
from services.campaign.leads.rows import IGNORE, HeaderError, build_column_map
from services.campaign.leads.schemas import (
    ImportRead,
    LeadCreate,
    LeadRead,
    LeadUpdate,
    RowProblem,
    SuppressionCreate,
    SuppressionImportResult,
    SuppressionRead,
)
from services.campaign.leads.upload import Upload

log = structlog.get_logger(__name__)

ERASURE_SOURCE = "erasure request"
_CHANNELS_FOR_KIND: dict[str, tuple[str, ...]] = {
    "email": ("email", "all"),
    "domain": ("email", "all"),
    "phone": ("sms", "voicemail", "all"),
}


def _field_error(name: str, message: str) -> Invalid:
    return Invalid(errors=[{"field": name, "message": message}])


@dataclass(frozen=True, slots=True)
class Context:
    """Who acts, and the keys and defaults the rules need."""

    principal: Principal
    hash_key: bytes
    default_region: str = "US"

    @property
    def org_id(self) -> uuid.UUID:
        """The acting organization (from the verified token)."""
        return self.principal.org_id


class LeadService:
    """Create, read, update and erase leads."""

    def __init__(self, session: AsyncSession, ctx: Context) -> None:
        self.session = session
        self.ctx = ctx
        self.leads = LeadRepository(session, ctx.org_id)
        self.suppressions = SuppressionRepository(session, ctx.org_id)
        self.validator = ContactValidator(ctx.default_region)

    async def get(self, lead_id: uuid.UUID) -> Lead:
        """Return the lead or raise :class:`LeadNotFound`."""
        lead = await self.leads.get(lead_id)
        if lead is None:
            raise LeadNotFound("No such lead.")
        return lead

    async def list(self, filters: LeadFilters, *, limit: int, cursor: str | None) -> Page[LeadRead]:
        """One page of leads matching ``filters``."""
        if email := filters.email:
            try:
                filters = _replace(filters, email=self.validator.email(email)[1])
            except InvalidContact:
                filters = _replace(filters, email=email.strip().lower())
        if phone := filters.phone:
            try:
                filters = _replace(filters, phone=self.validator.phone(phone)[0])
            except InvalidContact as exc:
                raise Invalid(errors=[{"field": "phone", "message": str(exc), "source": "query"}]) from exc
        rows = await self.leads.page(filters, limit=limit, cursor=cursor)
        return make_page(rows, limit, LeadRead.of)

    def _contact(self, email: str | None, phone: str | None) -> tuple[str | None, str | None, str | None, str | None]:
        """Normalise ``(email, phone)``; return ``(email, email_normalized, phone, inferred_tz)``."""
        errors: list[dict[str, str]] = []
        out_email = out_norm = out_phone = tz = None
        if email is not None and email.strip():
            try:
                out_email, out_norm = self.validator.email(email)
            except InvalidContact as exc:
                errors.append({"field": "email", "message": str(exc)})
        if phone is not None and phone.strip():
            try:
                out_phone, tz = self.validator.phone(phone)
            except InvalidContact as exc:
                errors.append({"field": "phone", "message": str(exc)})
        if errors:
            raise Invalid(errors=errors)
        return out_email, out_norm, out_phone, tz

    async def _refuse_erased(self, email_normalized: str | None, phone: str | None) -> None:
        values = []
        if email_normalized:
            values.append(contact_hash(self.ctx.hash_key, "email", email_normalized))
        if phone:
            values.append(contact_hash(self.ctx.hash_key, "phone", phone))
        if not values:
            return
        stmt = sa.select(sa.func.count()).where(
            SUPPRESSIONS.c.org_id == self.ctx.org_id,
            SUPPRESSIONS.c.kind == SuppressionKind.HASH.value,
            SUPPRESSIONS.c.value.in_(values),
        )
        if (await execute(self.session, stmt)).scalar_one():
            raise ContactErased("This person asked to be erased; they cannot be added again.")

    async def _refuse_duplicate(
        self, email_normalized: str | None, phone: str | None, exclude: uuid.UUID | None = None
    ) -> None:
        other = await self.leads.find_by_contact(email_normalized=email_normalized, phone=phone, exclude=exclude)
        if other is not None:
            field_name = "email" if email_normalized else "phone"
            raise DuplicateLead(f"A lead with this {field_name} already exists.", lead_id=str(other.id))

    def _apply_consent(self, lead: Lead, data: LeadCreate | LeadUpdate, fields: set[str]) -> None:
        granted = [c for c in ("consent_email", "consent_sms", "consent_voice") if getattr(data, c) is True]
        source = data.consent_source
        if granted and not source:
            raise _field_error("consent_source", "Say where consent was given when recording it.")
        now = utcnow()
        for name, at, src in (
            ("consent_email", "consent_email_at", None),
            ("consent_sms", "consent_sms_at", "consent_sms_source"),
            ("consent_voice", "consent_voice_at", "consent_voice_source"),
        ):
            if name not in fields or getattr(data, name) is None:
                continue
            if getattr(data, name):
                setattr(lead, at, now)
                if src:
                    setattr(lead, src, source)
            else:
                setattr(lead, at, None)
                if src:
                    setattr(lead, src, None)
        if granted:
            lead.consent_source = source

    async def _refresh_status(self, lead: Lead) -> None:
        hits = await find_suppressed(
            self.session, org_id=self.ctx.org_id, lead_ids=[lead.id], channel=None, key=self.ctx.hash_key
        )
        lead.status = LeadStatus.SUPPRESSED if hits.get(lead.id) else LeadStatus.ACTIVE

    async def create(self, data: LeadCreate) -> Lead:
        """Create a lead; suppressed contacts are created as ``suppressed``.

        Raises:
            Invalid: no email and no phone, or a field is not valid.
            ContactErased: the person was erased before.
            DuplicateLead: another lead has this email (or phone).
        """
        email, email_norm, phone, inferred = self._contact(data.email, data.phone)
        if not email and not phone:
            raise Invalid(
                "A lead needs an email or a phone.",
                errors=[{"field": "email", "message": "email or phone is required"}],
            )
        timezone = self._timezone(data.timezone) or inferred
        await self._refuse_erased(email_norm, phone)
        await self._refuse_duplicate(email_norm, phone)
        lead = Lead(
            org_id=self.ctx.org_id,
            email=email,
            email_normalized=email_norm,
            phone=phone,
            first_name=data.first_name,
            last_name=data.last_name,
            company=data.company,
            title=data.title,
            timezone=timezone,
            custom_fields=dict(data.custom_fields or {}),
        )
        self._apply_consent(lead, data, data.model_fields_set)
        try:
            async with self.session.begin_nested():
                await self.leads.add(lead)
        except IntegrityError as exc:
            raise DuplicateLead("A lead with this email or phone already exists.") from exc
        await self._refresh_status(lead)
        await self.session.flush()
        log.info("lead_created", lead_id=str(lead.id))
        return lead

    def _timezone(self, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return normalize_timezone(value)
        except InvalidContact as exc:
            raise _field_error("timezone", str(exc)) from exc

    async def update(self, lead_id: uuid.UUID, data: LeadUpdate) -> Lead:
        """Apply the fields sent; re-check identity, erasure and suppression when contacts change."""
        lead = await self.leads.get(lead_id, for_update=True)
        if lead is None:
            raise LeadNotFound("No such lead.")
        if lead.erased_at is not None:
            raise LeadErased("This lead was erased.")
        fields = data.model_fields_set
        email_in = data.email if "email" in fields else lead.email
        phone_in = data.phone if "phone" in fields else lead.phone
        email, email_norm, phone, inferred = self._contact(email_in, phone_in)
        if not email and not phone:
            raise _field_error("email", "A lead needs an email or a phone.")
        if (email_norm, phone) != (lead.email_normalized, lead.phone):
            await self._refuse_erased(email_norm, phone)
            await self._refuse_duplicate(email_norm, phone, exclude=lead.id)
        lead.email, lead.email_normalized, lead.phone = email, email_norm, phone
        for name in ("first_name", "last_name", "company", "title"):
            if name in fields:
                setattr(lead, name, getattr(data, name))
        if "timezone" in fields:
            lead.timezone = self._timezone(data.timezone) or inferred
        elif lead.timezone is None:
            lead.timezone = inferred
        if "custom_fields" in fields:
            lead.custom_fields = dict(data.custom_fields or {})
        self._apply_consent(lead, data, fields)
        lead.updated_at = utcnow()
        try:
            async with self.session.begin_nested():
                await self.session.flush()
        except IntegrityError as exc:
            raise DuplicateLead("A lead with this email or phone already exists.") from exc
        await self._refresh_status(lead)
        await self.session.flush()
        return lead

    async def erase(self, lead_id: uuid.UUID) -> None:
        """Erase a lead's personal data everywhere (GDPR Art. 17) in this transaction; keep ids and HMACs only.

        The lead row keeps its id with every personal column nulled; its contacts stay on the
        suppression list as HMACs only (every channel), so the person is never added or
        contacted again. Its live enrollments stop and its unsent messages become
        ``skipped`` (reason ``erased``), so no queued job can send them: the worker claims
        only ``queued`` and ``held`` rows, and RQ jobs carry ids only. Every copy of its data
        in other tables is tombstoned or deleted (:mod:`services.campaign.leads.erasure`).
        Erasing again sweeps the copies linked by id once more (a send that was in flight
        may have written after the first erasure).

        Raises:
            LeadNotFound: no such lead in this organization.
        """
        lead = await self.leads.get(lead_id, for_update=True)
        if lead is None:
            raise LeadNotFound("No such lead.")
        first = lead.erased_at is None
        contact = Contact(email=lead.email_normalized, phone=lead.phone) if first else None
        if contact is not None:
            for kind, value in (("email", contact.email), ("phone", contact.phone)):
                if value:
                    await self.suppressions.add(
                        channel=SuppressionChannel.ALL,
                        kind=SuppressionKind.HASH,
                        value=contact_hash(self.ctx.hash_key, kind, value),
                        reason=SuppressionReason.ERASURE,
                        source=ERASURE_SOURCE,
                        created_by=self.ctx.principal.user_id,
                    )
        now = utcnow()
        erased = await ErasureRepository(self.session, self.ctx.org_id).erase_copies(lead.id, contact, now=now)
        if first:
            for name in _PERSONAL_COLUMNS:
                setattr(lead, name, None)
            lead.custom_fields = {}
            lead.status = LeadStatus.ERASED
            lead.erased_at = now
        lead.updated_at = now
        await self.session.flush()
        # The audit line: who asked, for which id, what changed; never the data itself.
        log.info(
            "lead_erased" if first else "lead_erasure_repeated",
            lead_id=str(lead.id),
            requested_by=str(self.ctx.principal.user_id),
            api_key_id=str(self.ctx.principal.api_key_id) if self.ctx.principal.api_key_id else None,
            rows=erased.counts,
        )


_PERSONAL_COLUMNS = (
    "email",
    "email_normalized",
    "phone",
    "first_name",
    "last_name",
    "company",
    "title",
    "timezone",
    "consent_email_at",
    "consent_sms_at",
    "consent_voice_at",
    "consent_source",
    "consent_sms_source",
    "consent_voice_source",
)
"""Columns of ``leads`` an erasure nulls (``custom_fields`` becomes ``{}``)."""


def _replace(filters: LeadFilters, **changes: Any) -> LeadFilters:
    return LeadFilters(**{**{f: getattr(filters, f) for f in LeadFilters.__dataclass_fields__}, **changes})


# --------------------------------------------------------------------------- imports


@dataclass
class ImportForm:
    """The text fields sent with an import upload, validated."""

    mapping: dict[str, str | None] = field(default_factory=dict)
    default_region: str = "US"
    delimiter: str | None = None
    unmapped: str = "custom"
    consent_source: str | None = None
    check_mx: bool = False


def parse_import_form(fields: dict[str, str], default_region: str) -> ImportForm:
    """Validate the form fields of an import upload; raise :class:`Invalid` naming each bad one."""
    errors: list[dict[str, str]] = []
    form = ImportForm(default_region=default_region)
    if raw := fields.get("mapping", "").strip():
        try:
            mapping = json.loads(raw)
            if not isinstance(mapping, dict) or not all(
                isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in mapping.items()
            ):
                raise ValueError
            form.mapping = mapping
        except ValueError:
            errors.append({"field": "mapping", "message": "a JSON object of column name to field name"})
    if raw := fields.get("default_region", "").strip().upper():
        if raw not in phonenumbers.SUPPORTED_REGIONS:
            errors.append({"field": "default_region", "message": "a two-letter country code such as US or FR"})
        form.default_region = raw
    if raw := fields.get("delimiter", ""):
        value = {"tab": "\t", "\\t": "\t"}.get(raw.lower(), raw)
        if value not in (",", ";", "\t"):
            errors.append({"field": "delimiter", "message": "one of , ; or tab"})
        form.delimiter = value
    if raw := fields.get("unmapped", "").strip():
        if raw not in ("custom", IGNORE):
            errors.append({"field": "unmapped", "message": "custom or ignore"})
        form.unmapped = raw
    if raw := fields.get("consent_source", "").strip():
        if len(raw) > 200:
            errors.append({"field": "consent_source", "message": "at most 200 characters"})
        form.consent_source = raw[:200]
    if raw := fields.get("check_mx", "").strip().lower():
        if raw not in _YES_NO:
            errors.append({"field": "check_mx", "message": "true or false"})
        form.check_mx = _YES_NO.get(raw, False)
    if errors:
        raise Invalid(errors=errors)
    return form


_YES_NO = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def check_header(upload: Upload, form: ImportForm) -> None:
    """Read the header of an uploaded file; raise :class:`Invalid` when it cannot be imported."""
    try:
        if upload.size == 0:
            raise FileRejected("The file is empty.")
        fmt = detect_format(upload.head)
        _, records = open_rows(io.BytesIO(upload.head), fmt, delimiter=form.delimiter)
        iterator = iter(records)
        header = next(iterator, None)
        if not isinstance(header, list):
            raise FileRejected("The header row is not valid CSV.")
        if len(upload.head) < 65536 and upload.size == len(upload.head):
            if not any(isinstance(r, list) and any(c.strip() for c in r) for r in iterator):
                raise FileRejected("The file has a header but no rows.")
        elif upload.lines == 0:
            raise FileRejected("The header line is too long.")
        build_column_map(header, form.mapping, unmapped=form.unmapped)
    except FileRejected as exc:
        raise Invalid(str(exc), errors=[{"field": "file", "message": str(exc)}]) from exc
    except HeaderError as exc:
        raise Invalid("The file cannot be imported as it is.", errors=exc.errors) from exc


class ImportService:
    """Register uploaded files as imports and hand them to the import job."""

    def __init__(self, session: AsyncSession, ctx: Context) -> None:
        self.session = session
        self.ctx = ctx
        self.imports = ImportRepository(session, ctx.org_id)

    async def get(self, import_id: uuid.UUID) -> LeadImport:
        """Return the import or raise :class:`ImportNotFound`."""
        item = await self.imports.get(import_id)
        if item is None:
            raise ImportNotFound("No such import.")
        return item

    async def replay(self, key: str | None) -> LeadImport | None:
        """Return the import an earlier request with this ``Idempotency-Key`` created, if any."""
        return await self.imports.by_idempotency_key(key) if key else None

    async def list(self, *, limit: int, cursor: str | None) -> Page[ImportRead]:
        """One page of imports, newest first."""
        return make_page(await self.imports.page(limit=limit, cursor=cursor), limit, ImportRead.of)

    async def register(
        self,
        *,
        import_id: uuid.UUID,
        upload: Upload,
        form: ImportForm,
        idempotency_key: str | None,
        jobs: PendingJobs,
    ) -> tuple[LeadImport, bool]:
        """Record the import with its file's bytes and enqueue its job after the commit; return ``(import, created)``.

        The bytes go into PostgreSQL in the same transaction (:mod:`.filestore`), so whichever
        host runs the job finds them, and an import never exists without its file.
        """
        item = LeadImport(
            id=import_id,
            org_id=self.ctx.org_id,
            created_by=self.ctx.principal.user_id,
            idempotency_key=idempotency_key,
            status=ImportStatus.QUEUED,
            filename=upload.filename,
            size_bytes=upload.size,
            sha256=upload.sha256,
            delimiter=form.delimiter,
            default_region=form.default_region,
            mapping=dict(form.mapping),
            options={"unmapped": form.unmapped, "consent_source": form.consent_source, "check_mx": form.check_mx},
        )
        try:
            await self.imports.add(item)
        except IntegrityError:
            existing = await self.replay(idempotency_key)
            if existing is None:
                raise
            return existing, False
        await filestore.store(self.session, self.ctx.org_id, item.id, upload.path)
        jobs.add(registry.RUN_IMPORT.spec(str(item.id), job_id=f"lead-import-{item.id}"))
        log.info("lead_import_queued", import_id=str(item.id), size_bytes=upload.size)
        return item, True


# --------------------------------------------------------------------------- suppressions


@dataclass
class ParsedSuppressions:
    """Entries read from a suppression CSV file, and the rows that were not valid."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    rejected: int = 0


def parse_suppression_file(path: Path, *, default_channel: str, default_reason: str, region: str) -> ParsedSuppressions:
    """Read a suppression CSV (columns ``value`` or ``email``/``phone``/``domain``, optional ``channel``,
    ``reason``, ``source``) into normalised entries."""
    out = ParsedSuppressions()
    with path.open("rb") as stream:
        head = stream.read(65536)
        stream.seek(0)
        _, records = open_rows(stream, detect_format(head))
        iterator = iter(records)
        header = next(iterator, None)
        if not isinstance(header, list):
            raise FileRejected("The header row is not valid CSV.")
        names = [h.strip().removeprefix("\ufeff").lower() for h in header]
        value_columns = [(i, n) for i, n in enumerate(names) if n in ("value", "email", "phone", "domain")]
        if not value_columns:
            raise FileRejected("The file needs a value, email, phone or domain column.")
        index = {n: i for i, n in enumerate(names)}
        row_no = 1
        for record in iterator:
            row_no += 1
            if isinstance(record, list) and not any(c.strip() for c in record):
                continue
            try:
                if not isinstance(record, list):
                    raise InvalidContact(f"not valid CSV: {record}")
                entries = _suppression_entries(record, value_columns, index, default_channel, default_reason, region)
                if not entries:
                    raise InvalidContact("no value")
                out.entries.extend(entries)
            except (InvalidContact, ValueError) as exc:
                out.rejected += 1
                if len(out.problems) < 100:
                    out.problems.append(RowProblem(row=row_no, reason=str(exc)[:300]))
    return out


def _cell(record: list[str], index: dict[str, int], name: str) -> str:
    i = index.get(name)
    return record[i].strip() if i is not None and i < len(record) else ""


def _suppression_entries(
    record: list[str],
    value_columns: list[tuple[int, str]],
    index: dict[str, int],
    default_channel: str,
    default_reason: str,
    region: str,
) -> list[dict[str, Any]]:
    channel = SuppressionChannel(_cell(record, index, "channel").lower() or default_channel)
    reason = SuppressionReason(_cell(record, index, "reason").lower() or default_reason)
    if reason is SuppressionReason.ERASURE:
        raise InvalidContact("erasure entries are created by erasing a lead")
    source = _cell(record, index, "source")[:200] or "csv import"
    entries = []
    for i, name in value_columns:
        raw = record[i].strip() if i < len(record) else ""
        if not raw:
            continue
        kind = guess_kind(raw) if name == "value" else SuppressionKind(name)
        if kind is SuppressionKind.HASH:
            raise InvalidContact("hash entries are created by erasing a lead")
        _check_channel(kind.value, channel.value)
        value = normalize_value(kind, raw, region)
        entries.append(
            {"channel": channel.value, "kind": kind.value, "value": value, "reason": reason.value, "source": source}
        )
    return entries


def _check_channel(kind: str, channel: str) -> None:
    allowed = _CHANNELS_FOR_KIND.get(kind, ("all",))
    if channel not in allowed:
        raise InvalidContact(f"a {kind} entry applies to channel {' or '.join(allowed)}, not {channel}")


class SuppressionService:
    """Add, remove, list, import and export the suppression list."""

    def __init__(self, session: AsyncSession, ctx: Context) -> None:
        self.session = session
        self.ctx = ctx
        self.suppressions = SuppressionRepository(session, ctx.org_id)
        self.leads = LeadRepository(session, ctx.org_id)

    async def get(self, suppression_id: uuid.UUID) -> Suppression:
        """Return the entry or raise :class:`SuppressionNotFound`."""
        item = await self.suppressions.get(suppression_id)
        if item is None:
            raise SuppressionNotFound("No such suppression.")
        return item

    async def list(
        self,
        *,
        channel: str | None,
        kind: str | None,
        reason: str | None,
        q: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page[SuppressionRead]:
        """One page of entries, newest first."""
        rows = await self.suppressions.page(channel=channel, kind=kind, reason=reason, q=q, limit=limit, cursor=cursor)
        return make_page(rows, limit, SuppressionRead.of)

    async def add(self, data: SuppressionCreate) -> tuple[Suppression, bool]:
        """Suppress a contact (idempotent); mark the leads it covers; return ``(entry, created)``."""
        kind = data.kind or guess_kind(data.value)
        if kind is SuppressionKind.HASH or data.reason is SuppressionReason.ERASURE:
            raise _field_error("kind", "Erasure entries are created by erasing a lead.")
        try:
            _check_channel(kind.value, data.channel.value)
            value = normalize_value(kind, data.value, self.ctx.default_region)
        except InvalidContact as exc:
            raise _field_error("value", str(exc)) from exc
        new_id = await self.suppressions.add(
            channel=data.channel,
            kind=kind,
            value=value,
            reason=data.reason,
            source=data.source,
            created_by=self.ctx.principal.user_id,
        )
        item = await self.suppressions.find(channel=data.channel.value, kind=kind.value, value=value)
        assert item is not None
        if new_id is not None:
            await self._refresh(kind.value, value)
            log.info("suppression_added", suppression_id=str(item.id), kind=kind.value, channel=data.channel.value)
        return item, new_id is not None

    async def remove(self, suppression_id: uuid.UUID) -> None:
        """Remove an entry (never an erasure one); leads it alone covered become active again."""
        item = await self.get(suppression_id)
        if item.reason == SuppressionReason.ERASURE or item.kind == SuppressionKind.HASH:
            raise SuppressionLocked("An erasure cannot be undone.")
        kind, value = item.kind, item.value
        await self.suppressions.delete(item)
        await self._refresh(kind, value)
        log.info("suppression_removed", suppression_id=str(suppression_id))

    async def _refresh(self, kind: str, value: str) -> None:
        ids = await self.suppressions.matching_leads(kind, value)
        if ids:
            await self.leads.refresh_status(self.ctx.hash_key, ids)

    async def import_entries(self, parsed: ParsedSuppressions) -> SuppressionImportResult:
        """Insert parsed entries in batches (existing ones are kept) and refresh every lead's status."""
        added = 0
        for start in range(0, len(parsed.entries), 1000):
            batch = parsed.entries[start : start + 1000]
            stmt = (
                sa.dialects.postgresql.insert(SUPPRESSIONS)
                .values(
                    [
                        {
                            **e,
                            "id": uuid.uuid4(),
                            "org_id": self.ctx.org_id,
                            "created_by": self.ctx.principal.user_id,
                            "created_at": utcnow(),
                        }
                        for e in batch
                    ]
                )
                .on_conflict_do_nothing(index_elements=["org_id", "kind", "value", "channel"])
                .returning(SUPPRESSIONS.c.id)
            )
            added += len((await execute(self.session, stmt)).all())
        if added:
            await self.leads.refresh_status(self.ctx.hash_key, None)
        return SuppressionImportResult(
            added=added,
            existing=len(parsed.entries) - added,
            rejected=parsed.rejected,
            problems=parsed.problems,
        )


def suppression_csv_header() -> Sequence[str]:
    """Columns of the suppression export (also accepted by the import)."""
    return ("value", "kind", "channel", "reason", "source", "created_at")
