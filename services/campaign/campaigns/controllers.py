"""HTTP controllers for campaigns, steps, enrollments and messages."""

from __future__ import annotations

from typing import Any

CONTROLLERS: list[Any] = []
