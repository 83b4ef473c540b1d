"""The inbox: each lead's conversation, its read state and assignment."""

from __future__ import annotations
