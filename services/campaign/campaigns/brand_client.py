"""Ask the brand service, over HTTP with the caller's token, whether a brand may launch on channels."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from services.campaign.campaigns.errors import BrandNotFound, BrandServiceUnavailable

log = structlog.get_logger(__name__)

# The brand box names the voicemail sender "voice"; campaigns name the channel "voicemail".
_CHANNEL_ALIASES = {"voice": "voicemail", "voicemail": "voicemail", "email": "email", "sms": "sms"}


@dataclass(frozen=True, slots=True)
class Readiness:
    """What each channel still lacks before a campaign on it may launch (empty: ready)."""

    missing: dict[str, list[str]]

    def missing_for(self, channels: Iterable[str]) -> dict[str, list[str]]:
        """Return what is missing for ``channels`` only (a channel the brand did not report is missing)."""
        out: dict[str, list[str]] = {}
        for channel in channels:
            if channel not in self.missing:
                out[channel] = ["the brand service reported nothing for this channel"]
            elif self.missing[channel]:
                out[channel] = self.missing[channel]
        return out


def _items(value: Any) -> list[str]:
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            if isinstance(item, Mapping):
                out.append(str(item.get("message") or item.get("detail") or item.get("code") or item))
            else:
                out.append(str(item))
        return out
    return [str(value)] if value else []


def parse_readiness(body: Any) -> Readiness:
    """Read a readiness document: ``channels`` as a mapping or a list of ``{channel, ready, missing}``."""
    channels = body.get("channels") if isinstance(body, Mapping) else None
    entries: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(channels, Mapping):
        entries = [(str(k), v) for k, v in channels.items() if isinstance(v, Mapping)]
    elif isinstance(channels, list):
        entries = [(str(v.get("channel")), v) for v in channels if isinstance(v, Mapping)]
    missing: dict[str, list[str]] = {}
    for name, entry in entries:
        channel = _CHANNEL_ALIASES.get(name)
        if channel is None:
            continue
        problems = _items(entry.get("missing")) or _items(entry.get("problems")) or _items(entry.get("errors"))
        if entry.get("ready") is False and not problems:
            problems = ["not ready"]
        missing[channel] = problems
    return Readiness(missing=missing)


class BrandClient:
    """A small HTTP client for the brand service (a new connection per call: launches are rare)."""

    def __init__(self, base_url: str, *, transport: httpx.AsyncBaseTransport | None = None, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.timeout = timeout

    async def readiness(self, brand_id: uuid.UUID, *, authorization: str) -> Readiness:
        """Return the brand's readiness; raise BrandNotFound or BrandServiceUnavailable."""
        url = f"{self.base_url}/api/brands/{brand_id}/readiness"
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=self.timeout) as client:
                response = await client.get(
                    url, headers={"Authorization": authorization, "Accept": "application/json"}, follow_redirects=False
                )
        except httpx.HTTPError as exc:
            log.warning("brand_readiness_unreachable", brand_id=str(brand_id), error_type=type(exc).__name__)
            raise BrandServiceUnavailable("The brand service did not answer; try the launch again.") from exc
        if response.status_code == 404:
            raise BrandNotFound("The campaign's brand does not exist.")
        if response.status_code != 200:
            log.warning("brand_readiness_failed", brand_id=str(brand_id), status=response.status_code)
            raise BrandServiceUnavailable(f"The brand service answered {response.status_code} to the readiness check.")
        try:
            return parse_readiness(response.json())
        except ValueError as exc:
            raise BrandServiceUnavailable("The brand service answered with something that is not JSON.") from exc
