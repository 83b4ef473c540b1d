"""Tables the campaign box owns."""

from __future__ import annotations
