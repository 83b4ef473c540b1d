"""HTTP controllers for leads, imports and suppressions."""

from __future__ import annotations

from typing import Any

CONTROLLERS: list[Any] = []
