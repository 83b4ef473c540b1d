"""Inbound email: raw MIME from the mail system (the hook, or a polled mailbox) to a stored event and its job.

:func:`receive` is the one way in: ``POST /hooks/email/inbound`` calls it, and so may anything
else that holds a raw email (a mailbox poller); :func:`process` is the ``inbound`` job's side.
"""

from services.campaign.inbound.email.mail import InboundMail, MailKind, MalformedMail
from services.campaign.inbound.email.service import EmailOutcome, process, receive

__all__ = ["EmailOutcome", "InboundMail", "MailKind", "MalformedMail", "process", "receive"]
