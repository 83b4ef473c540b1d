"""Settings of the worker fleet and the ticker."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from libs.settings import Environment, SendingCapsSettings


class WorkerSettings(SendingCapsSettings):
    """What workers and the ticker read from the environment."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    service_name: str = "worker"
    smtp_sink_host: str = "127.0.0.1"
    smtp_sink_port: int = Field(default=1025, description="Local SMTP sink used when a sender has no SMTP host.")

    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Public URL of the gateway: unsubscribe links and Twilio status callbacks point here.",
    )
    job_timeout: int = Field(default=180, ge=10, description="RQ job timeout (seconds) of a send job.")
    smtp_timeout: float = Field(default=20.0, gt=0, description="Socket timeout of every SMTP operation.")
    twilio_timeout: float = Field(default=15.0, gt=0, description="HTTP timeout of every Twilio call.")
    twilio_base_url: str | None = Field(
        default=None, description="Send Twilio API calls here instead of https://api.twilio.com (tests, proxies)."
    )
    openai_timeout: float = Field(default=20.0, gt=0, description="HTTP timeout of one OpenAI request.")
    openai_max_retries: int = Field(default=1, ge=0, le=3)
    openai_base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint (tests, gateways).")
    openai_model: str = "gpt-4o-mini"
    send_max_attempts: int = Field(default=5, ge=1, le=20, description="Pre-hand-off retries before failing.")
    retry_base_seconds: float = Field(default=30.0, ge=0, description="First backoff of a pre-hand-off retry.")
    retry_max_seconds: float = Field(default=3600.0, ge=0)
    ticker_interval: float = Field(default=1.0, gt=0, description="Seconds between two ticker passes.")
    ticker_batch: int = Field(default=500, ge=1, le=10_000, description="Enrollments claimed per transaction.")
    repair_after_seconds: float = Field(
        default=60.0, ge=0, description="A queued ledger row older than this with no RQ job is enqueued again."
    )
    worker_alive_ttl: float = Field(
        default=15.0,
        gt=0,
        description="Liveness TTL of a worker and lease of its claim: a killed worker's queued messages are "
        "enqueued again within about 1.5x this, its in-flight message is unknown within about 1x this.",
    )
    unknown_hold_hours: float | None = Field(
        default=None,
        gt=0,
        description="A lead whose step is unknown waits on it until an operator resolves the message; set, "
        "its enrollment moves on after this many hours (the message stays unknown, never resent).",
    )
    clock_offset_seconds: float = Field(
        default=0.0,
        description="Shift the worker's and ticker's clock; only with SDR_ENV=test (tests drive time with it).",
    )

    @model_validator(mode="after")
    def _clock_offset_only_in_tests(self) -> WorkerSettings:
        # The services, the gateway and operators read the real clock: a shifted engine would
        # stamp the ledger with times they see in the future (or the past).
        if self.clock_offset_seconds and self.env is not Environment.TEST:
            raise ValueError(
                "SDR_CLOCK_OFFSET_SECONDS shifts only the worker's and ticker's clock and is accepted only "
                f"with SDR_ENV=test (SDR_ENV is {self.env.value}); unset it"
            )
        return self

    @model_validator(mode="after")
    def _timeouts_fit_the_job(self) -> WorkerSettings:
        openai_total = self.openai_timeout * (1 + self.openai_max_retries) + 2 * self.openai_max_retries
        # SMTP may spend one timeout per phase of a send (connect, greeting, envelope, data).
        if max(openai_total + 4 * self.smtp_timeout, openai_total + self.twilio_timeout) >= self.job_timeout:
            raise ValueError("provider timeouts must add up to less than SDR_JOB_TIMEOUT")
        return self
