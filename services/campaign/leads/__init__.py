"""Leads, CSV imports, suppressions and erasure."""
