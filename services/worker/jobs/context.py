"""The worker process's send context: pools, kept SMTP connections, provider clients, held claims.

One per process, held in its runtime (``libs.runtime``): :func:`install` sets it (the worker's
main does, before it takes jobs), :func:`context` builds it on first use otherwise.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from redis import Redis
from sqlalchemy import Engine

from libs import jobs as registry
from libs import runtime
from libs.db.base import utcnow
from libs.db.session import make_engine, system_session
from libs.queue import JobSpec, QueueName, redis_from_url
from libs.suppression import stored_hash_key
from services.worker import ledger
from services.worker.channels.email import DkimSigning, OAuthLogins, SmtpTransport
from services.worker.channels.recorder import LocalRecorder
from services.worker.channels.twilio import (
    TwilioAccount,
    make_client,
)
from services.worker.personalize import Personalizer, make_openai_client
from services.worker.ratelimit import RateLimiter
from services.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from libs.crypto import SecretBox

log = structlog.get_logger(__name__)

QUEUE_OF: dict[str, QueueName] = {channel: job.queue for channel, job in registry.SEND.items()}


@dataclass
class Context:
    """What one worker process keeps between jobs: pools, kept SMTP connections, provider clients."""

    settings: WorkerSettings
    engine: Engine
    redis: Redis
    smtp: SmtpTransport
    limiter: RateLimiter
    recorder: LocalRecorder
    twilio_clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    personalizers: dict[str, Personalizer] = field(default_factory=dict)
    before_send: Callable[[ledger.LoadedRow], None] | None = None
    """Test hook called right before the provider call (fault injection), never set in production."""
    before_claim: Callable[[ledger.LoadedRow], None] | None = None
    """Test hook called after the gate and right before the claim (races), never set in production."""
    _box: SecretBox | None = None
    _erasure_key: bytes | None = None
    _steps: futures.ThreadPoolExecutor | None = None
    _claims: dict[uuid.UUID, tuple[int, float]] = field(default_factory=dict)
    """The claims this process holds now: message id -> (attempt, monotonic time of the claim)."""
    _claims_lock: threading.Lock = field(default_factory=threading.Lock)
    _lease_keeper: threading.Thread | None = None
    _lease_stop: threading.Event = field(default_factory=threading.Event)
    _owns_pools: bool = True
    """Whether :meth:`close` disposes the engine and Redis client (not when the process's runtime owns them)."""

    def erasure_key(self) -> bytes:
        """The key of erasure hashes (``libs.suppression.load_hash_key``), loaded on first need.

        Only an organization that has erased someone needs it, and opening it loads
        cryptography (about 6 MB per worker), so a worker that never meets one never pays.
        """
        if self._erasure_key is None:
            self._erasure_key = stored_hash_key(self.engine, self.settings)
        return self._erasure_key

    def step_thread(self) -> futures.ThreadPoolExecutor:
        """The one thread that commits a claim while the job's thread opens the send."""
        if self._steps is None:
            self._steps = futures.ThreadPoolExecutor(1, thread_name_prefix="claim")
        return self._steps

    @property
    def box(self) -> SecretBox:
        """The key box that opens stored provider secrets (cryptography is loaded on first use)."""
        if self._box is None:
            from libs.crypto import SecretBox

            self._box = SecretBox.from_settings(self.settings)
        return self._box

    @classmethod
    def create(cls, settings: WorkerSettings, process: runtime.Runtime | None = None) -> Context:
        """Build a context from ``settings``: on ``process``'s engine and Redis, else on pools of its own."""
        if process is None:
            redis, engine = redis_from_url(settings.redis_url), make_engine(settings.database_url, pool_size=2)
        else:
            redis, engine = process.redis(settings.redis_url), process.engine(settings.database_url)
        context = cls(
            settings=settings,
            engine=engine,
            redis=redis,
            smtp=SmtpTransport(timeout=settings.smtp_timeout),
            limiter=RateLimiter(redis),
            recorder=LocalRecorder(settings.data_dir),
            _owns_pools=process is None,
        )
        # Mail is signed with the organization's DKIM key and OAuth senders log in with their
        # tokens, both read through this context's engine and secret box.
        context.smtp.signer = DkimSigning(context)
        context.smtp.logins = OAuthLogins(context)
        return context

    def now(self) -> datetime:
        """The worker's clock (shifted by ``clock_offset_seconds``, which tests use to move time)."""
        return utcnow() + timedelta(seconds=self.settings.clock_offset_seconds)

    def lease_seconds(self) -> float:
        """How long a claim lasts unless renewed: the liveness TTL, so a killed worker's claim runs out as fast."""
        return self.settings.worker_alive_ttl

    def hold_claim(self, message_id: uuid.UUID, attempt: int) -> None:
        """Keep renewing the lease of a committed claim until :meth:`release_claim` (or the job timeout)."""
        with self._claims_lock:
            self._claims[message_id] = (attempt, time.monotonic())
            if self._lease_keeper is None or not self._lease_keeper.is_alive():
                self._lease_stop.clear()
                self._lease_keeper = threading.Thread(target=self._keep_leases, name="claim-lease", daemon=True)
                self._lease_keeper.start()

    def release_claim(self, *message_ids: uuid.UUID) -> None:
        """Stop renewing these claims (their outcome is recorded, or the batch is over)."""
        with self._claims_lock:
            for message_id in message_ids:
                self._claims.pop(message_id, None)

    def renew_leases(self) -> int:
        """Extend the lease of every claim this process holds; return how many rows were extended.

        A claim is renewed for at most the job timeout: past it RQ's own timeout has given the
        job up, and a send still hanging then is left to run out like a dead worker's.
        """
        cutoff = time.monotonic() - self.settings.job_timeout
        with self._claims_lock:
            claims = {m: a for m, (a, at) in self._claims.items() if at >= cutoff}
        if not claims:
            return 0
        params = {
            "ids": list(claims),
            "attempts": list(claims.values()),
            "lease": self.now() + timedelta(seconds=self.lease_seconds()),
        }
        with system_session(self.engine) as session:
            return len(session.execute(ledger.RENEW, params).all())

    def _keep_leases(self) -> None:
        period = self.lease_seconds() / 3
        while not self._lease_stop.wait(period):
            try:
                self.renew_leases()
            except Exception as exc:  # a database blip: the next renewal may still come in time
                log.warning("claim_lease_renewal_failed", error=type(exc).__name__)

    def close(self) -> None:
        """Release connections."""
        self._lease_stop.set()
        if self._lease_keeper is not None:
            self._lease_keeper.join(5)
            self._lease_keeper = None
        self.smtp.close()
        if self._steps is not None:
            self._steps.shutdown()
            self._steps = None
        if self._owns_pools:
            self.engine.dispose()
            self.redis.close()

    def personalizer(self, encrypted_key: str | None) -> Personalizer:
        """The organization's writer: OpenAI with its key, else the local writer."""
        if not encrypted_key:
            return self.personalizers.setdefault("", Personalizer(None, model=self.settings.openai_model))
        cached = self.personalizers.get(encrypted_key)
        if cached is None:
            client = make_openai_client(
                self.box.decrypt(encrypted_key),
                timeout=self.settings.openai_timeout,
                max_retries=self.settings.openai_max_retries,
                base_url=self.settings.openai_base_url,
            )
            cached = self.personalizers[encrypted_key] = Personalizer(client, model=self.settings.openai_model)
        return cached

    def twilio(self, sid: str, encrypted: str) -> Any:
        """The organization's Twilio client, with explicit timeouts."""
        key = (sid, encrypted)
        if key not in self.twilio_clients:
            account = TwilioAccount(sid, self.box.decrypt(encrypted))
            self.twilio_clients[key] = make_client(
                account, timeout=self.settings.twilio_timeout, base_url=self.settings.twilio_base_url
            )
        return self.twilio_clients[key]


CONTEXT = "worker.context"
"""The key of the process's send context in its runtime (``libs.runtime``)."""


def install(context: Context | None) -> None:
    """Hold ``context`` as the process's send context (the worker's main does, before it takes jobs)."""
    runtime.current().install(CONTEXT, context)


def context() -> Context:
    """The process's send context, built on first use on the runtime's settings, engine and Redis."""
    process = runtime.current()
    return process.resource(CONTEXT, lambda: Context.create(process.settings(WorkerSettings), process))


def job_for(message_ids: Sequence[uuid.UUID | str], channel: str, settings: WorkerSettings, tag: str) -> JobSpec:
    """The RQ job that sends ``message_ids``: ids only, deterministic id, explicit timeout."""
    ids = [str(i) for i in message_ids]
    lease = settings.job_timeout * max(1, len(ids))
    return registry.SEND[channel].spec(ids, job_id=f"msg_{ids[0]}_{len(ids)}_{tag}", timeout=lease)
