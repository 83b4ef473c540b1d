"""The ids a test's seeded world is looked up by (organization, brand, campaign and its rows)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass
class World:
    """What a test set up: ids to look things up by."""

    org_id: uuid.UUID
    brand_id: uuid.UUID
    campaign_id: uuid.UUID
    step_ids: list[uuid.UUID] = field(default_factory=list)
    lead_ids: list[uuid.UUID] = field(default_factory=list)
    enrollment_ids: list[uuid.UUID] = field(default_factory=list)
