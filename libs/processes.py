"""The production process table: every process kind Tidewater runs, as one ``sdr`` command each.

The deployment files under ``infra/`` (the Dockerfile, ``compose.yaml``, the Kubernetes
manifests, the ``Procfile``) follow this table, and ``tests/infra`` checks that they do: the
same process names, the same ``sdr`` commands, ports and probe paths, and only ``SDR_*``
variables that a settings class reads. ``sdr dev`` runs the same commands on one machine
(``libs.dev.system``), with every queue in one worker group.

``python -m libs.processes probe`` is the image's health check: it asks ``/healthz`` of the
app that PID 1 serves, and succeeds at once for processes that serve no HTTP (workers, the
ticker, ``sdr migrate``: the orchestrator watches those by their exit).
"""

from __future__ import annotations

import sys
import urllib.request
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from libs.dev.settings import DevSettings
from libs.queue import ALL_QUEUES, QueueName


class Kind(StrEnum):
    """What a process is to an orchestrator."""

    ONE_SHOT = "one-shot"  # runs to completion before the rest start (``sdr migrate``)
    HTTP = "http"  # serves HTTP: probes, a Service, replicas behind a load balancer
    WORKER = "worker"  # consumes RQ queues; scaled on their depth
    SINGLETON = "singleton"  # one is enough (more are safe)


CLI_SETTINGS = "libs.dev.settings:DevSettings"
"""What the ``sdr`` command line itself reads, in every process (ports, the bind address, the data dir)."""

COMMON: tuple[str, ...] = ("SDR_ENV", "SDR_SECRET_KEY", "SDR_DATABASE_URL", "SDR_REDIS_URL")
"""What every process reads: production refuses to start without a secret key of its own."""

SECRETS: frozenset[str] = frozenset(
    {
        "SDR_SECRET_KEY",
        "SDR_ENCRYPTION_KEYS",
        "SDR_DATABASE_URL",
        "SDR_REDIS_URL",
        "SDR_INBOUND_EMAIL_SECRET",
        "SDR_METRICS_TOKEN",
        "SDR_OIDC_CLIENT_SECRET",
    }
)
"""Variables that carry credentials: given from a secret store or an uncommitted env file, never inlined."""

HEALTH_PATH = "/healthz"
"""Answers while the process is up (liveness)."""
READY_PATH = "/readyz"
"""Answers 200 once PostgreSQL and Redis answer (and, at the gateway, the services): readiness."""

BIND_HOST = "0.0.0.0"  # noqa: S104 - a container listens on its own network namespace's interfaces
"""Where the apps listen inside a container or pod."""


def _port(app: str) -> int:
    default = DevSettings.model_fields[f"{app}_port"].default
    return int(default)


@dataclass(frozen=True, slots=True)
class Process:
    """One process kind of the deployment."""

    name: str
    """Its name in every file: the compose service, the Kubernetes workload, the Procfile line."""
    kind: Kind
    args: tuple[str, ...]
    """The arguments after ``sdr``."""
    env: tuple[str, ...]
    """The ``SDR_*`` variables it must be given."""
    optional: tuple[str, ...] = ()
    """``SDR_*`` variables it reads when an operator sets them."""
    port: int | None = None
    queues: tuple[QueueName, ...] = ()
    settings: tuple[str, ...] = ()
    """The settings classes it reads, as ``module:Class`` (besides the ``sdr`` command line's own)."""

    @property
    def command(self) -> tuple[str, ...]:
        """The whole command line: ``sdr`` and its arguments."""
        return ("sdr", *self.args)

    @property
    def subcommand(self) -> str:
        """The ``sdr`` subcommand it runs."""
        return self.args[0]

    @property
    def health_path(self) -> str | None:
        """The liveness probe's path; ``None`` for processes that serve no HTTP."""
        return HEALTH_PATH if self.port is not None else None

    @property
    def ready_path(self) -> str | None:
        """The readiness probe's path; ``None`` for processes that serve no HTTP."""
        return READY_PATH if self.port is not None else None

    @property
    def allowed(self) -> frozenset[str]:
        """Every ``SDR_*`` variable a deployment file may give this process."""
        return frozenset((*self.env, *self.optional))


def _serve(app: str, env: tuple[str, ...], optional: tuple[str, ...], settings: tuple[str, ...]) -> Process:
    port = _port(app)
    args = ("serve", app, "--host", BIND_HOST, "--port", str(port))
    return Process(app, Kind.HTTP, args, (*COMMON, *env), (*LOGGING, *optional), port=port, settings=settings)


LOGGING: tuple[str, ...] = ("SDR_LOG_LEVEL", "SDR_LOG_JSON", "SDR_DATABASE_POOL_SIZE", "SDR_ENCRYPTION_KEYS")
"""Variables every process reads when set: logging, the pool size, older keys during a rotation."""

UPSTREAMS: tuple[str, ...] = ("SDR_AUTH_URL", "SDR_BRAND_URL", "SDR_CAMPAIGN_URL")
JWKS: tuple[str, ...] = ("SDR_JWKS_URL",)
WORKER_ENV: tuple[str, ...] = (*COMMON, "SDR_PUBLIC_BASE_URL")
WORKER_OPTIONAL: tuple[str, ...] = (
    *LOGGING,
    "SDR_JOB_TIMEOUT",
    "SDR_WORKER_ALIVE_TTL",
    "SDR_UNKNOWN_HOLD_HOURS",
    "SDR_EMAIL_HOURLY_CAP",
    "SDR_EMAIL_DAILY_CAP",
    "SDR_SMS_HOURLY_CAP",
    "SDR_SMS_DAILY_CAP",
    "SDR_DOMAIN_PACING_PER_MINUTE",
)

WORKER_SETTINGS: tuple[str, ...] = (
    "services.worker.settings:WorkerSettings",
    "services.campaign.inbound.settings:InboundSettings",  # the inbound queue's jobs
)

WORKER_GROUPS: dict[str, tuple[QueueName, ...]] = {
    "worker-email": (QueueName.EMAIL,),
    "worker-phone": (QueueName.SMS, QueueName.VOICEMAIL),
    "worker-inbound": (QueueName.INBOUND, QueueName.DEFAULT),
}
"""Workers split by queue: each group scales on its own queues' depth; together they take every queue."""


def _worker(name: str, queues: tuple[QueueName, ...]) -> Process:
    args = ("worker", "--queues", ",".join(str(q) for q in queues))
    return Process(name, Kind.WORKER, args, WORKER_ENV, WORKER_OPTIONAL, queues=queues, settings=WORKER_SETTINGS)


PROCESSES: tuple[Process, ...] = (
    Process("migrate", Kind.ONE_SHOT, ("migrate",), COMMON, LOGGING),
    _serve(
        "auth",
        (*JWKS, "SDR_PUBLIC_BASE_URL"),
        ("SDR_OIDC_ISSUER", "SDR_OIDC_CLIENT_ID", "SDR_OIDC_CLIENT_SECRET"),
        ("services.auth.settings:AuthSettings",),
    ),
    _serve("brand", (*JWKS, "SDR_PUBLIC_BASE_URL"), (), ("services.brand.settings:BrandSettings",)),
    _serve(
        "campaign",
        (*JWKS, "SDR_BRAND_URL", "SDR_PUBLIC_BASE_URL", "SDR_INBOUND_EMAIL_SECRET"),
        (),
        ("services.campaign.settings:CampaignSettings", "services.campaign.inbound.settings:InboundSettings"),
    ),
    _serve("gateway", UPSTREAMS, ("SDR_METRICS_TOKEN",), ("gateway.settings:GatewaySettings",)),
    *(_worker(name, queues) for name, queues in WORKER_GROUPS.items()),
    Process("ticker", Kind.SINGLETON, ("ticker",), WORKER_ENV, WORKER_OPTIONAL, settings=WORKER_SETTINGS),
    # The IMAP readers of the email senders' mailboxes: more are safe (each mailbox is held by lease).
    Process(
        "mail",
        Kind.SINGLETON,
        ("mail",),
        WORKER_ENV,
        LOGGING,
        settings=("services.campaign.mailbox.settings:MailSettings",),
    ),
)
"""Every process of a deployment, in start order (migrations first, the gateway after the services)."""

BY_NAME: dict[str, Process] = {p.name: p for p in PROCESSES}
APPS: tuple[Process, ...] = tuple(p for p in PROCESSES if p.kind is Kind.HTTP)
WORKERS: tuple[Process, ...] = tuple(p for p in PROCESSES if p.kind is Kind.WORKER)
PUBLIC = "gateway"
"""The only process reached from outside."""

assert sorted(q for w in WORKERS for q in w.queues) == sorted(ALL_QUEUES), "every queue has exactly one group"


def rq_queue_key(queue: QueueName | str) -> str:
    """The Redis list an RQ queue's waiting jobs are in (what KEDA's Redis list scaler reads)."""
    return f"rq:queue:{queue}"


def _pid1_argv(proc: Path = Path("/proc/1/cmdline")) -> list[str]:
    try:
        return [part.decode() for part in proc.read_bytes().split(b"\0") if part]
    except OSError:
        return []


def probe_url(argv: list[str]) -> str | None:
    """The ``/healthz`` URL of the app ``argv`` (an ``sdr serve`` command line) serves; ``None`` otherwise."""
    if "serve" not in argv:
        return None
    rest = argv[argv.index("serve") + 1 :]
    if not rest or rest[0] not in {p.name for p in APPS}:
        return None
    port = _port(rest[0])
    if "--port" in rest and rest.index("--port") + 1 < len(rest):
        port = int(rest[rest.index("--port") + 1])
    return f"http://127.0.0.1:{port}{HEALTH_PATH}"


def probe(argv: list[str] | None = None, *, timeout: float = 3.0) -> int:
    """Exit code of the health check: 0 when the app answers ``/healthz`` (or serves no HTTP), else 1."""
    url = probe_url(_pid1_argv() if argv is None else argv)
    if url is None:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback http only
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":  # pragma: no cover - the image's HEALTHCHECK
    if sys.argv[1:] == ["probe"]:
        raise SystemExit(probe())
    raise SystemExit("usage: python -m libs.processes probe")
