"""Customer webhooks: endpoints, the signature recipe, SSRF-checked delivery and its log.

The inbound part records message events; :func:`services.campaign.webhooks.outbox.fan_out` owes
each one to the endpoints subscribed to its type, and the ``deliver_webhook`` job makes the
signed attempts.
"""
