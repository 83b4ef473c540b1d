"""Tables the brand box owns."""

from __future__ import annotations
