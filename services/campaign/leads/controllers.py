"""HTTP controllers for leads, imports and suppressions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Stream

from libs.db.models.leads import LeadStatus, SuppressionChannel, SuppressionKind, SuppressionReason
from libs.errors import Invalid
from libs.openapi import multipart_body, problems, with_request_body
from libs.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from libs.queue import PendingJobs
from libs.scopes import Area, scope_area
from libs.security import Role, requires
from services.campaign.leads.csvfile import FileRejected, csv_line
from services.campaign.leads.deps import lead_dependencies
from services.campaign.leads.repository import ImportRepository, LeadFilters, SuppressionRepository
from services.campaign.leads.schemas import (
    ImportRead,
    LeadCreate,
    LeadRead,
    LeadUpdate,
    SuppressionCreate,
    SuppressionImportResult,
    SuppressionRead,
)
from services.campaign.leads.service import (
    Context,
    ImportService,
    LeadService,
    SuppressionService,
    check_header,
    parse_import_form,
    parse_suppression_file,
    suppression_csv_header,
)
from services.campaign.leads.upload import discard, receive_file
from services.campaign.settings import CampaignSettings

IDEMPOTENCY_HEADER = "Idempotency-Key"
CSV = "text/csv; charset=utf-8"
_CSV_FILE = {"type": "string", "format": "binary", "contentMediaType": "text/csv", "description": "The CSV file."}
LEAD_IMPORT_FORM = multipart_body(
    {
        "file": {**_CSV_FILE, "description": "The CSV file: a header row, then one lead per row."},
        "mapping": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": 'JSON object of column name to lead field (null ignores it), e.g. {"E-mail": "email"}.',
        },
        "default_region": {
            "type": "string",
            "pattern": "^[A-Za-z]{2}$",
            "description": "Country of phone numbers written without a country code (default: the service's).",
        },
        "delimiter": {"type": "string", "enum": [",", ";", "tab"], "description": "Separator (default: detected)."},
        "unmapped": {
            "type": "string",
            "enum": ["custom", "ignore"],
            "description": "What to do with columns that map to no field: keep them as custom fields, or ignore them.",
        },
        "consent_source": {
            "type": "string",
            "maxLength": 200,
            "description": "Where the SMS/voice consent of these leads was recorded.",
        },
        "check_mx": {
            "type": "string",
            "enum": ["true", "false"],
            "default": "false",
            "description": "Also reject rows whose email domain accepts no mail (a lookup timing out does not reject).",
        },
    },
    description="A CSV upload and its import options.",
)
SUPPRESSION_IMPORT_FORM = multipart_body(
    {
        "file": {**_CSV_FILE, "description": "Columns value (or email/phone/domain); channel, reason, source."},
        "channel": {"type": "string", "enum": ["email", "sms", "voicemail", "all"], "default": "all"},
        "reason": {"type": "string", "enum": ["unsubscribe", "stop", "bounce", "complaint", "manual"]},
    },
    description="A CSV of suppression entries and the defaults of their channel and reason.",
)
SUPPRESSION_UPLOAD_BYTES = 10 * 1024 * 1024
SUPPRESSION_UPLOAD_ROWS = 200_000
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name=IDEMPOTENCY_HEADER,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeat a request safely: the same key returns the first result.",
    ),
]


def _csv_response(lines: AsyncIterator[str], filename: str) -> Stream:
    async def encoded() -> AsyncIterator[bytes]:
        async for line in lines:
            yield line.encode("utf-8")

    return Stream(
        encoded(),
        media_type=CSV,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


class LeadController(Controller):
    """Leads of the caller's organization."""

    path = "/api/leads"
    tags = ["leads"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.LEADS)
    dependencies = lead_dependencies()

    @get("/", operation_id="ListLeads")
    async def list_leads(
        self,
        leads: NamedDependency[LeadService],
        status: FromQuery[LeadStatus | None] = None,
        q: Annotated[
            str | None, QueryParameter(max_length=200, description="Search email, phone, company, names.")
        ] = None,
        email: Annotated[str | None, QueryParameter(max_length=320)] = None,
        phone: Annotated[str | None, QueryParameter(max_length=64)] = None,
        company: Annotated[str | None, QueryParameter(max_length=200)] = None,
        import_id: FromQuery[uuid.UUID | None] = None,
        created_after: FromQuery[datetime | None] = None,
        created_before: FromQuery[datetime | None] = None,
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        cursor: FromQuery[Cursor] = None,
    ) -> Page[LeadRead]:
        """List leads, newest first, with filters and cursor pagination."""
        filters = LeadFilters(
            status=status.value if status else None,
            q=q,
            email=email,
            phone=phone,
            company=company,
            import_id=import_id,
            created_after=created_after,
            created_before=created_before,
        )
        return await leads.list(filters, limit=limit, cursor=cursor)

    @post(
        "/",
        operation_id="CreateLead",
        responses=problems(409, s409="A lead with this email or phone exists, or the contact was erased."),
        guards=[requires(Role.MEMBER)],
    )
    async def create_lead(self, leads: NamedDependency[LeadService], data: JSONBody[LeadCreate]) -> LeadRead:
        """Create a lead (an email or a phone is required)."""
        return LeadRead.of(await leads.create(data))

    @get("/{lead_id:uuid}", operation_id="GetLead")
    async def get_lead(self, leads: NamedDependency[LeadService], lead_id: FromPath[uuid.UUID]) -> LeadRead:
        """Show one lead."""
        return LeadRead.of(await leads.get(lead_id))

    @patch(
        "/{lead_id:uuid}",
        operation_id="UpdateLead",
        responses=problems(409, s409="Another lead has this email or phone, or this lead was erased."),
        guards=[requires(Role.MEMBER)],
    )
    async def update_lead(
        self,
        leads: NamedDependency[LeadService],
        lead_id: FromPath[uuid.UUID],
        data: JSONBody[LeadUpdate],
    ) -> LeadRead:
        """Change the fields sent."""
        return LeadRead.of(await leads.update(lead_id, data))

    @delete("/{lead_id:uuid}", operation_id="EraseLead", guards=[requires(Role.ADMIN)])
    async def erase_lead(self, leads: NamedDependency[LeadService], lead_id: FromPath[uuid.UUID]) -> None:
        """Erase a lead (GDPR): personal data removed, the contact suppressed by hash for good."""
        await leads.erase(lead_id)


class ImportController(Controller):
    """CSV imports of leads: upload, progress, and the report of rejected rows."""

    path = "/api/leads/imports"
    tags = ["leads"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.LEADS)
    dependencies = lead_dependencies()

    @post(
        "/",
        operation_id="CreateLeadImport",
        guards=[requires(Role.MEMBER)],
        request_max_body_size=None,
        status_code=202,
        operation_class=with_request_body(LEAD_IMPORT_FORM),
        responses={200: ResponseSpec(ImportRead, description="A replay of an earlier upload with this key")},
    )
    async def create_import(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[CampaignSettings],
        imports: NamedDependency[ImportService],
        ctx: NamedDependency[Context],
        jobs: NamedDependency[PendingJobs],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ImportRead]:
        """Upload a CSV file (multipart field `file`; optional `mapping`, `default_region`, `delimiter`,
        `unmapped`, `consent_source`, `check_mx`) and start importing it in the background.

        `check_mx=true` also rejects rows whose email domain accepts no mail (no MX and no
        public A/AAAA record, or a null MX); a lookup that times out does not reject."""
        if (earlier := await imports.replay(idempotency_key)) is not None:
            return Response(ImportRead.of(earlier), status_code=200, headers={"Idempotent-Replayed": "true"})
        import_id = uuid.uuid4()
        # The process's own scratch copy, there only while this request checks and stores it.
        dest = Path(settings.data_dir) / "uploads" / f"{import_id}.csv"
        upload = await receive_file(
            request.headers.get("content-type"),
            request.stream(),
            dest,
            max_bytes=settings.import_max_bytes,
            max_lines=settings.import_max_rows + 1,
        )
        try:
            form = parse_import_form(upload.fields, settings.default_phone_region)
            check_header(upload, form)
            item, created = await imports.register(
                import_id=import_id, upload=upload, form=form, idempotency_key=idempotency_key, jobs=jobs
            )
        finally:
            discard(dest)
        if not created:
            return Response(ImportRead.of(item), status_code=200, headers={"Idempotent-Replayed": "true"})
        return Response(ImportRead.of(item), status_code=202, headers={"Location": f"/api/leads/imports/{item.id}"})

    @get("/", operation_id="ListLeadImports")
    async def list_imports(
        self,
        imports: NamedDependency[ImportService],
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        cursor: FromQuery[Cursor] = None,
    ) -> Page[ImportRead]:
        """List imports, newest first."""
        return await imports.list(limit=limit, cursor=cursor)

    @get("/{import_id:uuid}", operation_id="GetLeadImport")
    async def get_import(self, imports: NamedDependency[ImportService], import_id: FromPath[uuid.UUID]) -> ImportRead:
        """Show an import and its progress (rows read, imported, updated, rejected)."""
        return ImportRead.of(await imports.get(import_id))

    @get("/{import_id:uuid}/report", operation_id="GetLeadImportReport", media_type=CSV)
    async def get_report(
        self,
        request: Request[Any, Any, Any],
        imports: NamedDependency[ImportService],
        ctx: NamedDependency[Context],
        import_id: FromPath[uuid.UUID],
    ) -> Stream:
        """Download the rejected rows as CSV: row number, reason, then the original cells."""
        item = await imports.get(import_id)
        header = ["row", "reason", *(item.options or {}).get("header", [])]
        db = request.app.state.db
        org_id = ctx.org_id

        async def lines() -> AsyncIterator[str]:
            yield csv_line(header)
            async with db.tenant(org_id) as report_session:
                async for batch in ImportRepository(report_session, org_id).rejections(import_id):
                    for row in batch:
                        yield csv_line([row.row_number, row.reason, *row.cells])

        return _csv_response(lines(), f"import-{import_id}-rejected.csv")


class SuppressionController(Controller):
    """The organization's suppression list."""

    path = "/api/suppressions"
    tags = ["suppressions"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.SUPPRESSIONS)
    dependencies = lead_dependencies()

    @get("/", operation_id="ListSuppressions")
    async def list_suppressions(
        self,
        suppressions: NamedDependency[SuppressionService],
        channel: FromQuery[SuppressionChannel | None] = None,
        kind: FromQuery[SuppressionKind | None] = None,
        reason: FromQuery[SuppressionReason | None] = None,
        q: Annotated[str | None, QueryParameter(max_length=320)] = None,
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        cursor: FromQuery[Cursor] = None,
    ) -> Page[SuppressionRead]:
        """List entries, newest first."""
        return await suppressions.list(
            channel=channel.value if channel else None,
            kind=kind.value if kind else None,
            reason=reason.value if reason else None,
            q=q,
            limit=limit,
            cursor=cursor,
        )

    @post("/", operation_id="CreateSuppression", guards=[requires(Role.MEMBER)])
    async def create_suppression(
        self, suppressions: NamedDependency[SuppressionService], data: JSONBody[SuppressionCreate]
    ) -> Response[SuppressionRead]:
        """Suppress an email, phone or domain on a channel (or all); adding it again changes nothing."""
        item, created = await suppressions.add(data)
        return Response(SuppressionRead.of(item), status_code=201 if created else 200)

    @get("/{suppression_id:uuid}", operation_id="GetSuppression")
    async def get_suppression(
        self,
        suppressions: NamedDependency[SuppressionService],
        suppression_id: FromPath[uuid.UUID],
    ) -> SuppressionRead:
        """Show one entry."""
        return SuppressionRead.of(await suppressions.get(suppression_id))

    @delete(
        "/{suppression_id:uuid}",
        operation_id="DeleteSuppression",
        responses=problems(409, s409="Erasure entries cannot be removed."),
        guards=[requires(Role.ADMIN)],
    )
    async def delete_suppression(
        self,
        suppressions: NamedDependency[SuppressionService],
        suppression_id: FromPath[uuid.UUID],
    ) -> None:
        """Remove an entry (erasure entries cannot be removed)."""
        await suppressions.remove(suppression_id)

    @post(
        "/import",
        operation_id="ImportSuppressions",
        guards=[requires(Role.MEMBER)],
        request_max_body_size=None,
        status_code=200,
        operation_class=with_request_body(SUPPRESSION_IMPORT_FORM),
    )
    async def import_suppressions(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[CampaignSettings],
        suppressions: NamedDependency[SuppressionService],
        ctx: NamedDependency[Context],
    ) -> SuppressionImportResult:
        """Upload a CSV of entries (multipart field `file`; columns value or email/phone/domain, and optional
        channel, reason, source; form fields `channel` and `reason` give defaults)."""
        dest = Path(settings.data_dir) / "suppression-imports" / f"{uuid.uuid4()}.csv"
        upload = await receive_file(
            request.headers.get("content-type"),
            request.stream(),
            dest,
            max_bytes=SUPPRESSION_UPLOAD_BYTES,
            max_lines=SUPPRESSION_UPLOAD_ROWS + 1,
        )
        try:
            channel = upload.fields.get("channel", "all").strip() or "all"
            reason = upload.fields.get("reason", "manual").strip() or "manual"
            errors = []
            if channel not in {c.value for c in SuppressionChannel}:
                errors.append({"field": "channel", "message": "email, sms, voicemail or all"})
            if reason not in {r.value for r in SuppressionReason} or reason == SuppressionReason.ERASURE:
                errors.append({"field": "reason", "message": "unsubscribe, stop, bounce, complaint or manual"})
            if errors:
                raise Invalid(errors=errors)
            try:
                parsed = await anyio.to_thread.run_sync(
                    lambda: parse_suppression_file(
                        dest, default_channel=channel, default_reason=reason, region=ctx.default_region
                    )
                )
            except FileRejected as exc:
                raise Invalid(str(exc), errors=[{"field": "file", "message": str(exc)}]) from exc
        finally:
            discard(dest)
        return await suppressions.import_entries(parsed)

    @get("/export", operation_id="ExportSuppressions", media_type=CSV)
    async def export_suppressions(self, request: Request[Any, Any, Any], ctx: NamedDependency[Context]) -> Stream:
        """Download the whole list as CSV (cells that a spreadsheet would run as formulas are neutralised)."""
        db = request.app.state.db
        org_id = ctx.org_id

        async def lines() -> AsyncIterator[str]:
            yield csv_line(suppression_csv_header())
            async with db.tenant(org_id) as export_session:
                async for batch in SuppressionRepository(export_session, org_id).all_rows():
                    for row in batch:
                        yield csv_line(
                            [row.value, row.kind, row.channel, row.reason, row.source, row.created_at.isoformat()]
                        )

        return _csv_response(lines(), "suppressions.csv")


CONTROLLERS: list[Any] = [LeadController, ImportController, SuppressionController]
