"""Inbound events: provider callbacks, inbound SMS and email, tracked links, customer webhooks."""
