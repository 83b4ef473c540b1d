"""The local SMTP sink: accepts every message on loopback and keeps it in a maildir.

Outbound mail has somewhere honest to go on one machine: senders without an SMTP host send
here (``SDR_SMTP_SINK_HOST``/``SDR_SMTP_SINK_PORT``), each message becomes one file under
``<data dir>/mail/new/`` that any mail client or ``cat`` can read, and one log line says who
sent what to whom.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from libs.logging import configure_logging
from services.worker.settings import WorkerSettings

log = structlog.get_logger(__name__)

MAIL_FOLDER = "mail"
"""Where the sink keeps messages, relative to the data dir."""


def mail_folder(data_dir: Path) -> Path:
    """Return the maildir the sink writes under ``data_dir``."""
    return data_dir / MAIL_FOLDER


def _accept_any_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    # Senders configured with credentials must be able to log in to the sink as well.
    return AuthResult(success=True)


class MaildirHandler:
    """An aiosmtpd handler that stores each message in a maildir and logs one line for it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(folder, create=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd hook
        """Store the message; answer 250 once it is on disk."""
        content = envelope.original_content or b""
        key = self.maildir.add(content)
        headers = BytesHeaderParser(policy=default_policy).parsebytes(content)
        log.info(
            "mail_received",
            mail_from=envelope.mail_from,
            rcpt_to=list(envelope.rcpt_tos),
            subject=str(headers.get("subject", "")),
            size=len(content),
            file=str(self.folder / "new" / key),
        )
        return "250 Message accepted for delivery"


def make_smtp(handler: MaildirHandler, *, loop: asyncio.AbstractEventLoop | None = None) -> SMTP:
    """Build the SMTP protocol the sink speaks (no TLS, any login accepted: loopback only)."""
    return SMTP(
        handler,
        hostname="tidewater-sink",
        enable_SMTPUTF8=True,
        auth_require_tls=False,
        authenticator=_accept_any_login,
        loop=loop,
    )


class _SinkController(Controller):
    def factory(self) -> SMTP:
        return make_smtp(self.handler, loop=self.loop)


@dataclass(frozen=True, slots=True)
class RunningSink:
    """Where a sink started by :func:`sink_server` listens and writes."""

    host: str
    port: int
    folder: Path

    def messages(self) -> list[bytes]:
        """Return every stored message, oldest first."""
        files = [*self.folder.glob("new/*"), *self.folder.glob("cur/*")]
        return [path.read_bytes() for path in sorted(files, key=lambda path: path.stat().st_mtime_ns)]


@contextmanager
def sink_server(folder: Path, *, host: str = "127.0.0.1", port: int = 1025) -> Iterator[RunningSink]:
    """Run the sink on a background thread for the duration of the block (tests, one-process installs)."""
    controller = _SinkController(MaildirHandler(folder), hostname=host, port=port)
    controller.start()
    try:
        yield RunningSink(host=host, port=port, folder=folder)
    finally:
        controller.stop()


async def serve_sink(folder: Path, *, host: str, port: int) -> None:
    """Serve SMTP on ``host:port`` until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    handler = MaildirHandler(folder)
    server = await loop.create_server(lambda: make_smtp(handler, loop=loop), host=host, port=port)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info("sink_started", host=host, port=port, folder=str(folder))
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        log.info("sink_stopped")


def run_sink(
    host: str | None = None,
    port: int | None = None,
    *,
    data_dir: Path | None = None,
    settings: WorkerSettings | None = None,
) -> None:
    """Run the local SMTP sink in this process until stopped (``sdr sink``)."""
    settings = settings or WorkerSettings()
    configure_logging(service="sink", level=settings.log_level, json=settings.json_logs)
    # aiosmtpd logs every SMTP command (and a deprecation notice per login); one line per message is ours.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    folder = mail_folder((data_dir or settings.data_dir).resolve())
    asyncio.run(
        serve_sink(folder, host=host or settings.smtp_sink_host, port=settings.smtp_sink_port if port is None else port)
    )
