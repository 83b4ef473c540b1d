"""Analytics rollups: counters kept as events land."""

from __future__ import annotations
