"""Deliverability tables: DKIM keys per sending domain."""

from __future__ import annotations
