"""``sdr mail``: the mailbox poller process (several may run, on several hosts: leases share the mailboxes)."""

from __future__ import annotations

import signal
from types import FrameType

from libs.db.session import make_engine
from libs.logging import configure_logging
from libs.queue import redis_from_url, require_noeviction
from libs.suppression import stored_hash_key
from services.campaign.inbound.events import Context
from services.campaign.mailbox.poller import Poller
from services.campaign.mailbox.settings import MailSettings


def run_mail(settings: MailSettings | None = None) -> None:
    """Read every active mailbox until SIGTERM or SIGINT; leases are given back on the way out."""
    settings = settings or MailSettings()
    configure_logging(service="mail", level=settings.log_level, json=settings.json_logs)
    engine = make_engine(settings.database_url, pool_size=min(settings.mail_max_mailboxes, 20) + 2)
    redis = redis_from_url(settings.redis_url)
    require_noeviction(redis)
    ctx = Context.from_settings(settings, suppression_key=stored_hash_key(engine, settings))
    poller = Poller(settings, engine, redis, ctx)

    def stop(signum: int, frame: FrameType | None) -> None:
        poller.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        poller.run()
    finally:
        engine.dispose()
        redis.close()
