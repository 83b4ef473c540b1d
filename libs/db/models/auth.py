"""Tables the auth box owns."""

from __future__ import annotations
