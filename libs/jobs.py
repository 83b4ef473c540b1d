"""The job registry: every RQ job's name, import path, queue and timeout, in one place.

A box that enqueues a job names its entry here (``jobs.RUN_IMPORT.spec(...)``) and never spells
the dotted path itself: the path is what RQ stores in Redis and imports in the worker, so it
is written once, next to its queue and timeout. ``tests/libs/test_jobs_registry.py`` imports
every target and checks that no module of ``gateway``, ``services`` or ``libs`` names a job by
a string outside this file.

The targets are named, never imported: ``libs`` imports no box, and the process that enqueues
a job (a service, the gateway, the ticker) need not load the code that runs it. A target's path
stays valid as long as jobs naming it may still sit in Redis.
"""

from __future__ import annotations

from libs.queue import Job, QueueName

__all__ = [
    "BY_NAME",
    "DELIVER_WEBHOOK",
    "PROCESS_INBOUND_EMAIL",
    "PROCESS_INBOUND_SMS",
    "PROCESS_TWILIO_STATUS",
    "PUBLISH_MESSAGE_EVENT",
    "REGISTRY",
    "RUN_IMPORT",
    "SEND",
    "SEND_EMAIL",
    "SEND_SMS",
    "SEND_VOICEMAIL",
    "Job",
]

SEND_EMAIL = Job("send_email", "services.worker.jobs.send_messages", QueueName.EMAIL, timeout=180)
"""A batch of email messages: load, gate, personalize, claim, send, record (the lease grows with the batch)."""
SEND_SMS = Job("send_sms", "services.worker.jobs.send_messages", QueueName.SMS, timeout=180)
"""A batch of SMS messages, as :data:`SEND_EMAIL`."""
SEND_VOICEMAIL = Job("send_voicemail", "services.worker.jobs.send_messages", QueueName.VOICEMAIL, timeout=180)
"""A batch of voicemail drops, as :data:`SEND_EMAIL`."""
SEND: dict[str, Job] = {"email": SEND_EMAIL, "sms": SEND_SMS, "voicemail": SEND_VOICEMAIL}
"""The send job of each channel (one queue per channel, so a slow provider never holds another)."""

RUN_IMPORT = Job(
    "run_import", "services.campaign.leads.jobs.run_import", QueueName.DEFAULT, timeout=3 * 3600, result_ttl=3600
)
"""One uploaded CSV import into leads, resumable after its last committed chunk."""

PROCESS_TWILIO_STATUS = Job(
    "process_twilio_status", "services.campaign.inbound.jobs.process_twilio_status", QueueName.INBOUND
)
"""A recorded Twilio status callback applied to its message."""
PROCESS_INBOUND_SMS = Job(
    "process_inbound_sms", "services.campaign.inbound.jobs.process_inbound_sms", QueueName.INBOUND
)
"""A recorded inbound text that is a plain reply."""
PROCESS_INBOUND_EMAIL = Job(
    "process_inbound_email", "services.campaign.inbound.jobs.process_inbound_email", QueueName.INBOUND
)
"""A recorded inbound email (reply, bounce, complaint)."""
PUBLISH_MESSAGE_EVENT = Job(
    "publish_message_event", "services.campaign.inbound.jobs.publish_message_event", QueueName.INBOUND
)
"""A recorded message event (``sent``, ``failed``...) owed to the customer's webhook endpoints."""
DELIVER_WEBHOOK = Job("deliver_webhook", "services.campaign.inbound.jobs.deliver_webhook", QueueName.INBOUND)
"""One signed attempt of a customer webhook delivery."""

REGISTRY: tuple[Job, ...] = (
    SEND_EMAIL,
    SEND_SMS,
    SEND_VOICEMAIL,
    RUN_IMPORT,
    PROCESS_TWILIO_STATUS,
    PROCESS_INBOUND_SMS,
    PROCESS_INBOUND_EMAIL,
    PUBLISH_MESSAGE_EVENT,
    DELIVER_WEBHOOK,
)
"""Every registered job."""
BY_NAME: dict[str, Job] = {job.name: job for job in REGISTRY}
