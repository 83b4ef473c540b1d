"""Signed per-message links: unsubscribe (RFC 8058 one-click), the open pixel and click redirects."""
