"""End to end through IMAP: a reply that lands in the sender's mailbox stops the lead's next step before it goes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from libs.db.session import system_session
from libs.ledger.enrollments import CLAIM_DUE_ENROLLMENTS
from libs.queue import QueueName, get_queue
from services.campaign.inbound import jobs
from services.campaign.mailbox.poller import Poller
from tests.services.campaign.mailbox.conftest import Mailroom, wait_for


def test_a_reply_in_the_mailbox_stops_the_next_step_before_the_ticker_creates_it(
    mailroom: Mailroom, start_poller: Callable[..., Poller], redis: Redis
) -> None:
    due = datetime.now(UTC) + timedelta(minutes=5)
    lead = mailroom.world.lead_ids[0]
    with system_session(mailroom.engine) as s:  # every lead's next step is due in five minutes
        s.execute(sa.text("UPDATE enrollments SET next_due_at = :d"), {"d": due})
    start_poller()
    mailroom.imap.append("jane@acme.example", mailroom.reply(1))  # "Sounds good, tell me more": interest
    wait_for(lambda: mailroom.events() == 1)
    queue = get_queue(QueueName.INBOUND, redis)
    try:
        SimpleWorker([queue], connection=redis, serializer=JSONSerializer).work(burst=True, with_scheduler=False)
    finally:
        jobs.dispose()
    assert queue.failed_job_registry.count == 0
    assert mailroom.count("SELECT intent FROM reply_classifications") == "interested"
    assert mailroom.count("SELECT status FROM enrollments WHERE lead_id = :l", l=lead) == "stopped"
    with system_session(mailroom.engine) as s:  # the ticker's claim once the step is due
        claimed = s.execute(CLAIM_DUE_ENROLLMENTS, {"now": due + timedelta(minutes=1), "batch": 10}).all()
    assert len(claimed) == 2  # the two leads who did not answer get their next step
    step_two = "SELECT count(*) FROM messages m JOIN campaign_steps s ON s.id = m.step_id WHERE s.position = 2"
    assert mailroom.count(step_two + " AND m.lead_id = :l", l=lead) == 0
    assert mailroom.count(step_two) == 2
