"""HTTP controllers: brands, their senders, provider credentials. Parse, call the service, return a schema.

Concurrency: every read of a brand, sender or credential carries ``ETag: "v<version>"``.
``PATCH`` must send it back in ``If-Match``: a missing header is ``428 PreconditionRequired``,
a stale one ``412 VersionMismatch`` (re-read and retry). ``DELETE`` checks ``If-Match`` when
given.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import structlog
from litestar import Controller, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from libs.crypto import SecretBox
from libs.openapi import problems
from libs.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from libs.scopes import Area, scope_area
from libs.security import Principal, Role, requires
from services.brand.deps import provide_brand_service, smtp_check_settings
from services.brand.schemas import (
    BrandCreate,
    BrandRead,
    BrandUpdate,
    CredentialCreate,
    CredentialRead,
    CredentialUpdate,
    DeleteOutcome,
    Readiness,
    SenderCreate,
    SenderRead,
    SenderUpdate,
)
from services.brand.service import (
    BrandService,
    brand_read,
    credential_read,
    etag,
    verify_sender,
)

IfMatch = Annotated[
    str | None,
    HeaderParameter(name="If-Match", max_length=64, description='The ETag of your last read, e.g. "v3".'),
]
_SERVICE = {"brands": Provide(provide_brand_service)}
_SENDER_422 = (
    "The sender is incomplete or has fields of another kind; `errors[]` names each field: an email sender "
    "needs `from_address` and `smtp_host` (`smtp_security` defaults to starttls and `smtp_port` to its "
    "usual port; `smtp_password` is needed with `smtp_username`); an SMS sender needs `phone_number` or "
    "`messaging_service_sid`; a voice sender needs `phone_number` and `tts_voice` or `audio_url` (reported "
    "on `tts_voice`); a field of another kind of sender is reported as not used by this kind."
)
"""What a 422 of sender create and update means beyond a field of the wrong shape."""


def _with_etag(body: Any, version: int, status: int = HTTP_200_OK) -> Response[Any]:
    return Response(content=body, status_code=status, headers={"ETag": etag(version)})


class BrandController(Controller):
    """Brands of the caller's organization."""

    path = "/api/brands"
    tags = ["brands"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.BRANDS)
    dependencies = _SERVICE

    @get("/", operation_id="ListBrands")
    async def list_brands(
        self,
        brands: NamedDependency[BrandService],
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        include_archived: FromQuery[bool] = False,
    ) -> Page[BrandRead]:
        """List brands, newest first (archived ones only with include_archived)."""
        return await brands.list_brands(cursor=cursor, limit=limit, include_archived=include_archived)

    @post("/", operation_id="CreateBrand", guards=[requires(Role.MEMBER)])
    async def create_brand(
        self, data: JSONBody[BrandCreate], brands: NamedDependency[BrandService]
    ) -> Response[BrandRead]:
        """Create a brand."""
        row = await brands.create_brand(data)
        return _with_etag(brand_read(row), row.version, HTTP_201_CREATED)

    @get("/{brand_id:uuid}", operation_id="GetBrand")
    async def get_brand(
        self, brand_id: FromPath[uuid.UUID], brands: NamedDependency[BrandService]
    ) -> Response[BrandRead]:
        """Read a brand (its ETag in the header)."""
        row = await brands.brand(brand_id)
        return _with_etag(brand_read(row), row.version)

    @patch("/{brand_id:uuid}", operation_id="UpdateBrand", responses=problems(412, 428), guards=[requires(Role.MEMBER)])
    async def update_brand(
        self,
        brand_id: FromPath[uuid.UUID],
        data: JSONBody[BrandUpdate],
        brands: NamedDependency[BrandService],
        if_match: IfMatch = None,
    ) -> Response[BrandRead]:
        """Change a brand; If-Match is required (428 without, 412 when stale)."""
        row = await brands.update_brand(brand_id, data, if_match)
        return _with_etag(brand_read(row), row.version)

    @delete(
        "/{brand_id:uuid}",
        operation_id="DeleteBrand",
        responses=problems(412),
        guards=[requires(Role.MEMBER)],
        status_code=HTTP_200_OK,
    )
    async def delete_brand(
        self, brand_id: FromPath[uuid.UUID], brands: NamedDependency[BrandService], if_match: IfMatch = None
    ) -> Response[BrandRead | None]:
        """Delete a brand: 204 when gone, 200 with the archived brand when a campaign still uses it."""
        outcome, row = await brands.delete_brand(brand_id, if_match)
        if outcome is DeleteOutcome.DELETED or row is None:
            return Response(content=None, status_code=HTTP_204_NO_CONTENT)
        return _with_etag(brand_read(row), row.version)

    @get("/{brand_id:uuid}/readiness", operation_id="GetBrandReadiness")
    async def readiness(
        self, brand_id: FromPath[uuid.UUID], brands: NamedDependency[BrandService], state: State
    ) -> Readiness:
        """Say per channel (email, sms, voicemail) what is missing before a campaign may launch."""
        return await brands.readiness(brand_id, twilio_required=state.get("twilio_required", True))


class SenderController(Controller):
    """Senders (email identities, SMS numbers, voice caller ids) of a brand."""

    path = "/api/brands/{brand_id:uuid}/senders"
    tags = ["senders"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.BRANDS)
    dependencies = _SERVICE

    @get("/", operation_id="ListSenders")
    async def list_senders(
        self,
        brand_id: FromPath[uuid.UUID],
        brands: NamedDependency[BrandService],
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
    ) -> Page[SenderRead]:
        """List the brand's senders, newest first."""
        return await brands.list_senders(brand_id, cursor=cursor, limit=limit)

    @post("/", operation_id="CreateSender", responses=problems(422, s422=_SENDER_422), guards=[requires(Role.MEMBER)])
    async def create_sender(
        self, brand_id: FromPath[uuid.UUID], data: JSONBody[SenderCreate], brands: NamedDependency[BrandService]
    ) -> Response[SenderRead]:
        """Add a sender; the SMTP password is write-only and stored encrypted."""
        row = await brands.create_sender(brand_id, data)
        return _with_etag(await brands.show_sender(row), row.version, HTTP_201_CREATED)

    @get("/{sender_id:uuid}", operation_id="GetSender")
    async def get_sender(
        self, brand_id: FromPath[uuid.UUID], sender_id: FromPath[uuid.UUID], brands: NamedDependency[BrandService]
    ) -> Response[SenderRead]:
        """Read a sender."""
        row = await brands.sender(brand_id, sender_id)
        return _with_etag(await brands.show_sender(row), row.version)

    @patch(
        "/{sender_id:uuid}",
        operation_id="UpdateSender",
        responses=problems(412, 422, 428, s422=_SENDER_422),
        guards=[requires(Role.MEMBER)],
    )
    async def update_sender(
        self,
        brand_id: FromPath[uuid.UUID],
        sender_id: FromPath[uuid.UUID],
        data: JSONBody[SenderUpdate],
        brands: NamedDependency[BrandService],
        if_match: IfMatch = None,
    ) -> Response[SenderRead]:
        """Change a sender (If-Match required); new SMTP settings clear its verification."""
        row = await brands.update_sender(brand_id, sender_id, data, if_match)
        return _with_etag(await brands.show_sender(row), row.version)

    @delete("/{sender_id:uuid}", operation_id="DeleteSender", responses=problems(412), guards=[requires(Role.MEMBER)])
    async def delete_sender(
        self,
        brand_id: FromPath[uuid.UUID],
        sender_id: FromPath[uuid.UUID],
        brands: NamedDependency[BrandService],
        if_match: IfMatch = None,
    ) -> None:
        """Delete a sender."""
        await brands.delete_sender(brand_id, sender_id, if_match)

    @post(
        "/{sender_id:uuid}/verify",
        operation_id="VerifySender",
        responses=problems(409, 502, s409="The sender changed meanwhile.", s502="No answer from the SMTP server."),
        guards=[requires(Role.MEMBER)],
        status_code=200,
    )
    async def verify(
        self,
        brand_id: FromPath[uuid.UUID],
        sender_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        state: State,
    ) -> Response[SenderRead]:
        """Connect and log in to the sender's SMTP server; 422 when it refuses, 502 when it does not answer."""
        # No request transaction here: the network check must not hold a database connection,
        # and a failed check must still be recorded, so the service commits its own two steps.
        structlog.contextvars.bind_contextvars(org_id=str(principal.org_id))
        box: SecretBox = state.box
        read = await verify_sender(state.db, principal.org_id, box, brand_id, sender_id, state.smtp_check)
        return _with_etag(read, read.version)

    @post(
        "/{sender_id:uuid}/mailbox/resume",
        operation_id="ResumeSenderMailbox",
        responses=problems(422, s422="The sender reads no mailbox (`imap_host` is not set)."),
        guards=[requires(Role.MEMBER)],
        status_code=200,
    )
    async def resume_mailbox(
        self, brand_id: FromPath[uuid.UUID], sender_id: FromPath[uuid.UUID], brands: NamedDependency[BrandService]
    ) -> Response[SenderRead]:
        """Read a paused mailbox again (after a refused login); its cursor is kept, new mail is read from there."""
        row = await brands.resume_mailbox(brand_id, sender_id)
        return _with_etag(await brands.show_sender(row), row.version)

    @post(
        "/{sender_id:uuid}/resume",
        operation_id="ResumeSender",
        responses=problems(422, s422="The sender is not paused (`paused_at` is not set)."),
        guards=[requires(Role.MEMBER)],
        status_code=200,
    )
    async def resume(
        self, brand_id: FromPath[uuid.UUID], sender_id: FromPath[uuid.UUID], brands: NamedDependency[BrandService]
    ) -> Response[SenderRead]:
        """Send from a sender a health rule paused again; during the cooldown no rule pauses it again."""
        row = await brands.resume_sender(brand_id, sender_id)
        return _with_etag(await brands.show_sender(row), row.version)


class CredentialController(Controller):
    """Provider credentials (Twilio, OpenAI) of the caller's organization; secrets never leave."""

    path = "/api/credentials"
    tags = ["credentials"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.CREDENTIALS)
    dependencies = _SERVICE

    @get("/", operation_id="ListCredentials")
    async def list_credentials(
        self,
        brands: NamedDependency[BrandService],
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
    ) -> Page[CredentialRead]:
        """List stored credentials (secrets shown only as set/last4)."""
        return await brands.list_credentials(cursor=cursor, limit=limit)

    @post(
        "/",
        operation_id="CreateCredential",
        responses=problems(409, s409="Credentials for this provider exist; update them."),
        guards=[requires(Role.ADMIN)],
    )
    async def create_credential(
        self, data: JSONBody[CredentialCreate], brands: NamedDependency[BrandService]
    ) -> Response[CredentialRead]:
        """Store credentials for a provider (one set per provider; 409 if present)."""
        row = await brands.create_credential(data)
        return _with_etag(credential_read(row), row.version, HTTP_201_CREATED)

    @get("/{credential_id:uuid}", operation_id="GetCredential")
    async def get_credential(
        self, credential_id: FromPath[uuid.UUID], brands: NamedDependency[BrandService]
    ) -> Response[CredentialRead]:
        """Read stored credentials."""
        row = await brands.credential(credential_id)
        return _with_etag(credential_read(row), row.version)

    @patch(
        "/{credential_id:uuid}",
        operation_id="UpdateCredential",
        responses=problems(412, 428),
        guards=[requires(Role.ADMIN)],
    )
    async def update_credential(
        self,
        credential_id: FromPath[uuid.UUID],
        data: JSONBody[CredentialUpdate],
        brands: NamedDependency[BrandService],
        if_match: IfMatch = None,
    ) -> Response[CredentialRead]:
        """Change stored credentials (If-Match required); a secret sent replaces the old one."""
        row = await brands.update_credential(credential_id, data, if_match)
        return _with_etag(credential_read(row), row.version)

    @delete("/{credential_id:uuid}", operation_id="DeleteCredential", guards=[requires(Role.ADMIN)])
    async def delete_credential(
        self, credential_id: FromPath[uuid.UUID], brands: NamedDependency[BrandService]
    ) -> None:
        """Delete stored credentials."""
        await brands.delete_credential(credential_id)


CONTROLLERS = [BrandController, SenderController, CredentialController]
__all__ = ["CONTROLLERS", "smtp_check_settings"]
