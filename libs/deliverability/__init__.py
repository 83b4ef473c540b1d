"""Deliverability: DKIM keys and signatures, and the DNS preflight of a sending domain."""
