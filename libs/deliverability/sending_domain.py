"""The DNS preflight of an email sender's domain, as the brand box runs it (its endpoint and readiness).

The process's DNS configuration is set once by the brand app (:func:`configure`, like its
logging): which nameservers answer (``SDR_DNS_NAMESERVERS``, ``host`` or ``host:port``; the
system's when empty), how long one question may take (``SDR_DNS_TIMEOUT``) and whether readiness
checks DNS (``SDR_DNS_PREFLIGHT``; on by default only in production, where a missing record costs
real mail). ``GET .../dns`` runs the checks whatever the last setting says.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import anyio.to_thread
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.models.brand import Sender, SenderKind
from libs.db.models.deliverability import DkimSigner
from libs.deliverability.dns_preflight import (
    DkimExpectation,
    DnsConfig,
    Finding,
    Lookups,
    Status,
    make_resolver,
    preflight,
)
from libs.deliverability.keys import domain_of, key_for, signer_of


class DnsSettings(BaseSettings):
    """How the DNS preflight asks: ``SDR_DNS_NAMESERVERS``, ``SDR_DNS_TIMEOUT``, ``SDR_DNS_PREFLIGHT``."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    dns_nameservers: list[str] = Field(
        default_factory=list, description='Resolvers of DNS checks, as ["host" or "host:port", ...]; empty = system.'
    )
    dns_timeout: float = Field(default=3.0, gt=0, le=30, description="Seconds one DNS question may take.")
    dns_preflight: bool | None = Field(
        default=None, description="Whether readiness checks senders' DNS records; defaults to on in production."
    )

    def config(self) -> DnsConfig:
        """The resolver configuration these settings name."""
        return DnsConfig(nameservers=tuple(self.dns_nameservers), timeout=self.dns_timeout)

    def in_readiness(self, *, production: bool) -> bool:
        """Whether readiness runs the checks."""
        return production if self.dns_preflight is None else self.dns_preflight


READINESS_BUDGET = 2.0
"""Seconds readiness waits for DNS in all (a launch asks readiness with a 5-second timeout)."""
_process: dict[str, DnsConfig | None] = {"config": DnsConfig(), "readiness": None}


def configure(config: DnsConfig, *, in_readiness: bool) -> None:
    """Set the process's DNS configuration, and whether readiness checks DNS with it."""
    _process["config"] = config
    _process["readiness"] = config if in_readiness else None


def current() -> DnsConfig:
    """The process's DNS configuration."""
    return _process["config"] or DnsConfig()


def for_readiness() -> DnsConfig | None:
    """The configuration readiness checks DNS with, or None when it does not."""
    return _process["readiness"]


def sending_sender(senders: Sequence[Sender]) -> Sender | None:
    """The email sender the worker sends from: verified first, then the oldest (as the worker picks it)."""
    email = [s for s in senders if s.kind == SenderKind.EMAIL.value and s.from_address and s.smtp_host]
    return min(email, key=lambda s: (s.verified_at is None, s.created_at, s.id), default=None)


async def expectation(session: AsyncSession, org_id: uuid.UUID, sender: Sender) -> tuple[str, DkimExpectation]:
    """The sender's domain and what its DKIM record should publish (read from the database)."""
    domain = domain_of(sender.from_address or "")
    key = await key_for(session, org_id, domain)
    own_server = await signer_of(session, org_id, sender.id) is DkimSigner.OWN_SERVER
    selector, public_key = (key.selector, key.public_key) if key else (None, None)
    return domain, DkimExpectation(selector, public_key, own_server=own_server)


async def check(
    domain: str, smtp_host: str, expected: DkimExpectation, config: DnsConfig | None = None
) -> list[Finding]:
    """Run the preflight of ``domain`` off the event loop (DNS questions block).

    A caller that gives up (a cancel scope) does not wait for the thread: it finishes on its own,
    bounded by the resolver's timeouts.
    """
    lookups = Lookups(make_resolver(config or current()))
    return await anyio.to_thread.run_sync(
        lambda: preflight(lookups, domain, smtp_host, expected), abandon_on_cancel=True
    )


def publish_hint(finding: Finding) -> str:
    """A finding in words, with the record to publish when there is one."""
    if finding.record is None:
        return finding.message
    record = finding.record
    return f"{finding.message} Publish {record.type} {record.name}: {record.value}"


async def readiness_gaps(session: AsyncSession, org_id: uuid.UUID, senders: Sequence[Sender]) -> list[tuple[str, str]]:
    """What readiness says about the sending domain: ``(dns_<code>, words)`` for each finding not ok.

    Empty when readiness does not check DNS in this process, or the brand has no email sender.
    The checks get :data:`READINESS_BUDGET` seconds in all (a campaign's launch waits for
    readiness); past it readiness says ``dns_unchecked`` and ``GET .../dns`` takes its time.
    """
    config = for_readiness()
    sender = sending_sender(senders)
    if config is None or sender is None:
        return []
    domain, expected = await expectation(session, org_id, sender)
    findings: list[Finding] | None = None
    with anyio.move_on_after(READINESS_BUDGET):
        findings = await check(domain, sender.smtp_host or "", expected, config)
    if findings is None:
        return [("dns_unchecked", f"DNS did not answer about {domain} in time; check it with GET .../dns.")]
    return [(f"dns_{f.code}", publish_hint(f)) for f in findings if f.status is not Status.OK]
