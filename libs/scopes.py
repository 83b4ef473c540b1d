"""The closed set of API-key scopes and the area each route of the public API belongs to.

A scope is ``<area>:read`` or ``<area>:write`` for one area of the API, or ``*`` for every
area. A token that carries scopes (an API key's) may call a route only when it holds the
route's scope: ``GET``, ``HEAD`` and ``OPTIONS`` need ``<area>:read``, every other method ``<area>:write``.
``<area>:write`` includes ``<area>:read``: a write answers with the resource it wrote, so a
key that may write an area reads it anyway. Scopes never widen a role: the route's role
guard applies as well, so a viewer key holding ``leads:write`` still cannot write leads.

Routes declare their area in ``opt`` (on the controller, or on a handler to override it):
``opt=scope_area(Area.LEADS)``. ``opt=ANY_TOKEN`` lets any token call a route (``GET
/api/auth/me``); ``opt=PEOPLE_ONLY`` refuses every scoped token. A route that declares
nothing refuses scoped tokens too, and the route audit fails on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Final


class Area(StrEnum):
    """A part of the public API that scopes name; every authenticated route belongs to one."""

    BRANDS = "brands"
    CREDENTIALS = "credentials"
    CAMPAIGNS = "campaigns"
    LEADS = "leads"
    SUPPRESSIONS = "suppressions"
    MESSAGES = "messages"
    WEBHOOKS = "webhooks"
    MEMBERS = "members"
    API_KEYS = "api_keys"

    @property
    def read(self) -> str:
        """The scope that reads this area."""
        return f"{self.value}:read"

    @property
    def write(self) -> str:
        """The scope that writes this area (it includes reading)."""
        return f"{self.value}:write"


AREA_COVERS: Final[Mapping[Area, str]] = {
    Area.BRANDS: "brands, their senders (and sender verification) and channel readiness",
    Area.CREDENTIALS: "provider credentials (Twilio, OpenAI)",
    Area.CAMPAIGNS: "campaigns, steps, enrollments, launch/pause/resume/archive/clone, schedule previews, analytics",
    Area.LEADS: "leads, lead timelines, CSV lead imports and their reports",
    Area.SUPPRESSIONS: "the suppression list, its CSV import and export",
    Area.MESSAGES: "the message ledger (read only)",
    Area.WEBHOOKS: "webhook endpoints and their deliveries",
    Area.MEMBERS: "members and invites (read only: people manage people)",
    Area.API_KEYS: "the organization's API keys (read only: people manage keys)",
}
"""What each area covers, as the API documentation says it."""

READ_ONLY_AREAS: Final = frozenset({Area.MESSAGES, Area.MEMBERS, Area.API_KEYS})
"""Areas no API key may write: the ledger is written by the workers, people and keys by people."""

ALL: Final = "*"
"""The scope that holds every other scope (the key's role still bounds what it may do)."""

SCOPES: Final[tuple[str, ...]] = (
    ALL,
    *(scope for area in Area for scope in ((area.read,) if area in READ_ONLY_AREAS else (area.read, area.write))),
)
"""Every scope a key may hold, in documentation order."""
KNOWN_SCOPES: Final = frozenset(SCOPES)

SCOPE_AREA: Final = "scope_area"
"""The ``opt`` key under which a route or controller declares its area."""
_ANY: Final = "any"
_PEOPLE_ONLY: Final = "people"

ANY_TOKEN: Final[Mapping[str, str]] = {SCOPE_AREA: _ANY}
"""Route ``opt``: any authenticated token may call it, whatever its scopes (``GET /api/auth/me``)."""
PEOPLE_ONLY: Final[Mapping[str, str]] = {SCOPE_AREA: _PEOPLE_ONLY}
"""Route ``opt``: no scoped (API-key) token may call it, whatever its scopes."""


READS_ONLY: Final[Mapping[str, bool]] = {"scope_reads_only": True}
"""Handler ``opt``: the route writes nothing though its method is not ``GET`` (a preview that
posts a draft to render), so a token needs only its area's ``read`` scope."""


def scope_area(area: Area) -> dict[str, Any]:
    """Route or controller ``opt`` declaring that its routes belong to ``area``."""
    return {SCOPE_AREA: area}


def is_declared(opt: Mapping[str, Any]) -> bool:
    """Whether a route's resolved ``opt`` declares an area, ``ANY_TOKEN`` or ``PEOPLE_ONLY``."""
    value = opt.get(SCOPE_AREA)
    return isinstance(value, Area) or value in (_ANY, _PEOPLE_ONLY)


class Requirement(StrEnum):
    """What a scoped token needs for a route besides a scope: nothing, or to be a person."""

    NONE = "none"
    PERSON = "person"


def required_scope(opt: Mapping[str, Any], method: str) -> str | Requirement:
    """The scope a scoped token needs to call ``method`` on a route with ``opt``.

    ``Requirement.NONE``: any token may call it; ``Requirement.PERSON``: no scoped token may
    (declared ``PEOPLE_ONLY``, or no declaration at all: deny by default).
    """
    value = opt.get(SCOPE_AREA)
    if value == _ANY:
        return Requirement.NONE
    if isinstance(value, Area):
        reads = method.upper() in ("GET", "HEAD", "OPTIONS") or opt.get("scope_reads_only") is True
        return value.read if reads else value.write
    return Requirement.PERSON


def grants(held: Iterable[str], needed: str) -> bool:
    """Whether the scopes ``held`` include ``needed`` (``*`` holds all; write holds read).

    Only known scopes count: a stored scope that is not (or no longer) in :data:`SCOPES`
    grants nothing.
    """
    known = KNOWN_SCOPES.intersection(held)
    if ALL in known or needed in known:
        return True
    area, _, access = needed.partition(":")
    return access == "read" and f"{area}:write" in known


def unknown_scopes(scopes: Iterable[str]) -> list[tuple[int, str]]:
    """The position and value of every scope of ``scopes`` outside :data:`SCOPES`."""
    return [(i, scope) for i, scope in enumerate(scopes) if scope not in KNOWN_SCOPES]


__all__ = [
    "ALL",
    "ANY_TOKEN",
    "AREA_COVERS",
    "KNOWN_SCOPES",
    "PEOPLE_ONLY",
    "READ_ONLY_AREAS",
    "SCOPES",
    "SCOPE_AREA",
    "Area",
    "Requirement",
    "grants",
    "is_declared",
    "required_scope",
    "scope_area",
    "unknown_scopes",
]
