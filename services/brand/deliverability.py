"""HTTP controllers of an email sender's deliverability: its DKIM key and the DNS preflight of its domain.

``POST .../dkim`` says who signs the sender's mail. With ``tidewater`` (the default) it generates
the domain's RSA-2048 key pair when the domain has none (the senders of one domain share its key,
so a second call answers the same key), or a new one under a new selector with ``rotate``, and
answers the TXT record to publish; the private key is stored sealed and never leaves. For a week
after a rotation the worker signs with the new and the replaced key, so mail verifies while DNS
moves to the new record. With ``own_server`` the worker sends the sender's mail as it is.
``GET .../dns`` asks DNS about SPF, DKIM, DMARC and MX and answers each finding with the exact
record to publish.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import anyio.to_thread
import structlog
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.crypto import SecretBox
from libs.db.base import utcnow
from libs.db.models.brand import Sender, SenderKind
from libs.db.models.deliverability import DkimKey, DkimSigner
from libs.deliverability import dkim, keys, sending_domain
from libs.deliverability.dns_preflight import Finding, Status
from libs.errors import Invalid
from libs.openapi import problems
from libs.scopes import Area, scope_area
from libs.security import Principal, Role, requires
from services.brand.deps import provide_brand_service
from services.brand.service import BrandService

log = structlog.get_logger(__name__)


class DkimSet(BaseModel):
    """Who signs the sender's mail; ``tidewater`` generates the domain's key if needed, ``rotate`` replaces it."""

    model_config = ConfigDict(extra="forbid")

    signed_by: DkimSigner = DkimSigner.TIDEWATER
    rotate: bool = False


class DnsRecordRead(BaseModel):
    """A DNS record to publish."""

    name: str
    type: str
    value: str


class DkimRead(BaseModel):
    """The sender's DKIM state: who signs, and the key's selector and record when Tidewater does."""

    sender_id: uuid.UUID
    domain: str
    signed_by: DkimSigner
    selector: str | None = None
    record: DnsRecordRead | None = None
    created_at: datetime | None = None
    previous_selector: str | None = None
    """The key a rotation replaced: it signs next to the new one for a week, so keep its record until then."""


class FindingRead(BaseModel):
    """One DNS check: ``code`` (spf, dkim, dmarc, mx), ``status`` (ok, missing, wrong), the record to publish."""

    code: str
    status: Status
    message: str
    record: DnsRecordRead | None = None


class DnsReport(BaseModel):
    """The DNS preflight of the sender's domain."""

    sender_id: uuid.UUID
    domain: str
    smtp_host: str
    ok: bool
    findings: list[FindingRead]
    checked_at: datetime


def _dkim_read(sender: Sender, domain: str, signer: DkimSigner, key: DkimKey | None) -> DkimRead:
    if signer is DkimSigner.OWN_SERVER or key is None:
        return DkimRead(sender_id=sender.id, domain=domain, signed_by=signer)
    record = DnsRecordRead(
        name=dkim.record_name(key.selector, domain), type="TXT", value=dkim.record_value(key.public_key)
    )
    return DkimRead(
        sender_id=sender.id,
        domain=domain,
        signed_by=signer,
        selector=key.selector,
        record=record,
        created_at=key.created_at,
        previous_selector=key.previous_selector,
    )


def _finding_read(finding: Finding) -> FindingRead:
    record = finding.record
    return FindingRead(
        code=finding.code,
        status=finding.status,
        message=finding.message,
        record=DnsRecordRead(name=record.name, type=record.type, value=record.value) if record else None,
    )


async def _email_sender(brands: BrandService, brand_id: uuid.UUID, sender_id: uuid.UUID) -> Sender:
    sender = await brands.sender(brand_id, sender_id)
    if sender.kind != SenderKind.EMAIL.value or not sender.from_address or not sender.smtp_host:
        raise Invalid("Only email senders sign mail.", errors=[{"field": "kind", "message": "not an email sender"}])
    return sender


class DeliverabilityController(Controller):
    """DKIM and DNS of a brand's email sender."""

    path = "/api/brands/{brand_id:uuid}/senders/{sender_id:uuid}"
    tags = ["deliverability"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.BRANDS)
    dependencies = {"brands": Provide(provide_brand_service)}

    @post(
        "/dkim",
        operation_id="SetSenderDkim",
        responses=problems(422, s422="Not an email sender, or `signed_by` is neither tidewater nor own_server."),
        guards=[requires(Role.MEMBER)],
        status_code=200,
    )
    async def set_dkim(
        self,
        brand_id: FromPath[uuid.UUID],
        sender_id: FromPath[uuid.UUID],
        brands: NamedDependency[BrandService],
        session: NamedDependency[AsyncSession],
        box: NamedDependency[SecretBox],
        data: JSONBody[DkimSet | None] = None,
    ) -> DkimRead:
        """Say who signs the sender's mail; with tidewater, the domain's key (made or rotated) and its record."""
        sender = await _email_sender(brands, brand_id, sender_id)
        request = data or DkimSet()
        signer = request.signed_by
        org_id = brands.org_id
        domain = keys.domain_of(sender.from_address or "")
        await keys.set_signer(session, org_id, sender.id, signer)
        key = await keys.key_for(session, org_id, domain)
        if signer is DkimSigner.TIDEWATER and (key is None or request.rotate):
            pair = await anyio.to_thread.run_sync(dkim.generate)
            now = utcnow()
            key = await keys.put_key(
                session,
                org_id,
                domain,
                selector=dkim.selector_for(now, key.selector if key else None),
                private_key_encrypted=dkim.seal(box, org_id, domain, pair.private_pem),
                public_key=pair.public_key,
                created_at=now,
            )
            log.info("dkim_key_generated", sender_id=str(sender.id), domain=domain, selector=key.selector)
        log.info("dkim_signer_set", sender_id=str(sender.id), domain=domain, signed_by=signer.value)
        return _dkim_read(sender, domain, signer, key)

    @get("/dkim", operation_id="GetSenderDkim")
    async def get_dkim(
        self,
        brand_id: FromPath[uuid.UUID],
        sender_id: FromPath[uuid.UUID],
        brands: NamedDependency[BrandService],
        session: NamedDependency[AsyncSession],
    ) -> DkimRead:
        """Who signs the sender's mail, and the record of the domain's key."""
        sender = await _email_sender(brands, brand_id, sender_id)
        domain = keys.domain_of(sender.from_address or "")
        signer = await keys.signer_of(session, brands.org_id, sender.id)
        return _dkim_read(sender, domain, signer, await keys.key_for(session, brands.org_id, domain))

    @get("/dns", operation_id="GetSenderDns", responses=problems(422, s422="Not an email sender."))
    async def dns(
        self,
        brand_id: FromPath[uuid.UUID],
        sender_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        box: NamedDependency[SecretBox],
        state: State,
    ) -> DnsReport:
        """Check the sender's domain in DNS (SPF covering the SMTP host, DKIM key, DMARC, MX); say what to publish."""
        # Read in a short transaction of its own: no database connection is held while DNS answers.
        async with state.db.tenant(principal.org_id) as session:
            sender = await _email_sender(BrandService(session, principal.org_id, box), brand_id, sender_id)
            domain, expected = await sending_domain.expectation(session, principal.org_id, sender)
        smtp_host = sender.smtp_host or ""
        findings = await sending_domain.check(domain, smtp_host, expected)
        log.info(
            "dns_preflight",
            sender_id=str(sender_id),
            domain=domain,
            findings={f.code: f.status.value for f in findings},
        )
        return DnsReport(
            sender_id=sender.id,
            domain=domain,
            smtp_host=smtp_host,
            ok=all(f.status is Status.OK for f in findings),
            findings=[_finding_read(f) for f in findings],
            checked_at=utcnow(),
        )


CONTROLLERS = [DeliverabilityController]
