"""Tables the worker part of the system owns."""

from __future__ import annotations
