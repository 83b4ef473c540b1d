"""Inbound events, split by source: ``twilio`` (status callbacks, texts), ``email`` (raw mail), ``links`` (/u /o /c).

Each source has its controller and one sync entry per hook; ``events`` holds the steps they
share, ``jobs`` the ``inbound`` queue's job paths. Customer webhooks are ``services.campaign.webhooks``.
"""
