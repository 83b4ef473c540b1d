"""``sdr reply``: a reply (or a bounce) to a message the sink kept reaches the real inbound hook over HTTP."""

from __future__ import annotations

import fcntl
import os
import smtplib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from litestar import Litestar
from sqlalchemy import Engine

from libs.app import create_service_app
from libs.cli import main
from libs.crypto import SecretBox
from libs.dev.state import LOCK_FILE, DevState, write_state
from services.campaign.inbound import jobs
from services.campaign.inbound.controllers import INBOUND_CONTROLLERS
from services.campaign.inbound.settings import InboundSettings
from services.campaign.webhooks.controllers import WEBHOOK_CONTROLLERS
from services.worker.channels.email import OutgoingEmail, build_email
from services.worker.sinks import mail_folder, sink_server
from tests.services.campaign.inbound.conftest import EMAIL_SECRET
from tests.services.campaign.inbound.factories import add_message, create_world, one, rows
from tests.support.servers import free_port
from tests.support.tokens import TokenSigner
from tests.support.world import World


@contextmanager
def serve(app: Litestar) -> Iterator[str]:
    """Run ``app`` under uvicorn on a loopback port in a thread; stop it on exit."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="inbound-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the inbound app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def gateway(inbound_settings: InboundSettings, signer: TokenSigner) -> Iterator[str]:
    """The inbound routes served over real HTTP, as the gateway forwards /hooks/email/inbound to them."""
    app = create_service_app(
        name="campaign",
        title="inbound test",
        settings=inbound_settings,
        route_handlers=[*INBOUND_CONTROLLERS, *WEBHOOK_CONTROLLERS],
        verifier=signer.verifier(),
        state={"inbound_settings": inbound_settings},
    )
    with serve(app) as url:
        yield url
    jobs.dispose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def sent(engine: Engine, box: SecretBox, data_dir: Path) -> tuple[World, uuid.UUID, uuid.UUID]:
    """A first email sent (the worker's own MIME, kept by the real sink) and the next email step queued."""
    world = create_world(engine, box)
    first = add_message(engine, world, step=0, provider_message_id="250 queued")
    queued = add_message(engine, world, step=2, status="queued")
    mime = build_email(
        OutgoingEmail(
            message_id=str(first),
            from_address="sam@acme.example",
            from_name="Sam Carter",
            to_address="lead0@example.com",
            subject="Cutting reporting time at Globex",
            body="Hi Lead0,\n\nWe cut reporting time by half for teams like yours.\n\nSam",
            postal_address="1 Main St, Springfield, IL 62701, USA",
            unsubscribe_url="http://127.0.0.1:8000/u/token",
            brand_name="Acme Analytics",
        )
    )
    with sink_server(mail_folder(data_dir), port=free_port()) as sink, smtplib.SMTP(sink.host, sink.port) as smtp:
        smtp.sendmail("sam@acme.example", ["lead0@example.com"], mime)
    return world, first, queued


def sdr(*args: str, **env: str | None) -> Any:
    return CliRunner().invoke(main, list(args), env=env)


def test_a_reply_to_the_newest_sink_message_is_recorded_as_the_reply_to_that_message(
    gateway: str, data_dir: Path, engine: Engine, sent: Any, run_inbound: Callable[[], int]
) -> None:
    _, first, queued = sent
    [stored] = (data_dir / "mail" / "new").iterdir()

    result = sdr(
        "reply", "--body", "Yes, let's talk on Tuesday.", "--url", gateway, "--show", SDR_DATA_DIR=str(data_dir)
    )

    assert result.exit_code == 0, result.output
    shown = result.stdout.split(f"reply to {stored.name}")[0]
    sent_mime = BytesParser(policy=policy.default).parsebytes(shown.encode())
    assert sent_mime["From"] == "lead0@example.com"
    assert sent_mime["To"] == "Sam Carter <sam@acme.example>"
    assert sent_mime["Subject"] == "Re: Cutting reporting time at Globex"
    assert sent_mime["In-Reply-To"] == f"<{first}@acme.example>"
    assert f"<{first}@acme.example>" in sent_mime["References"]
    assert f"reply to {stored.name} -> 202" in result.stdout
    assert '"kind": "reply"' in result.stdout
    assert run_inbound() == 1
    (event,) = rows(engine, "SELECT message_id, data FROM message_events WHERE type = 'replied'")
    assert event.message_id == first
    assert event.data["text"].startswith("Yes, let's talk on Tuesday.")
    assert "We cut reporting time" not in event.data["text"]  # the quoted original is not the reply
    assert one(engine, "SELECT status FROM enrollments") == "stopped"
    assert one(engine, "SELECT status FROM messages WHERE id = :m", m=queued) == "skipped"


def test_a_bounce_marks_the_message_bounced_and_suppresses_the_address(
    gateway: str, data_dir: Path, engine: Engine, sent: Any, run_inbound: Callable[[], int]
) -> None:
    _, first, _ = sent
    [stored] = (data_dir / "mail" / "new").iterdir()

    result = sdr("reply", str(stored), "--bounce", "--url", gateway, SDR_DATA_DIR=str(data_dir))

    assert result.exit_code == 0, result.output
    assert '"kind": "hard_bounce"' in result.stdout
    run_inbound()
    assert rows(engine, "SELECT status, error_code FROM messages WHERE id = :m", m=first)[0] == ("bounced", "dsn_5.1.1")
    assert rows(engine, "SELECT channel, value, reason FROM suppressions") == [("email", "lead0@example.com", "bounce")]


def test_a_soft_bounce_is_only_recorded(
    gateway: str, data_dir: Path, engine: Engine, sent: Any, run_inbound: Callable[[], int]
) -> None:
    _, first, _ = sent
    result = sdr("reply", "--bounce", "--status", "4.2.2", "--url", gateway, SDR_DATA_DIR=str(data_dir))
    assert result.exit_code == 0, result.output
    assert '"kind": "soft_bounce"' in result.stdout
    run_inbound()
    assert one(engine, "SELECT status FROM messages WHERE id = :m", m=first) == "sent"
    assert one(engine, "SELECT count(*) FROM suppressions") == 0


def test_without_url_or_secret_it_uses_the_running_sdr_dev(
    gateway: str, data_dir: Path, engine: Engine, sent: Any, run_inbound: Callable[[], int]
) -> None:
    _, first, _ = sent
    # What a running sdr dev leaves: its state file, with the lock it holds for its whole life.
    with (data_dir / LOCK_FILE).open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        write_state(
            data_dir,
            DevState(
                pid=os.getpid(),
                data_dir=str(data_dir),
                database_url=os.environ["SDR_DATABASE_URL"],
                redis_url=os.environ["SDR_REDIS_URL"],
                gateway_url=gateway,
                inbound_email_secret=EMAIL_SECRET,
            ),
        )
        result = sdr("reply", "--body", "Tell me more.", SDR_DATA_DIR=str(data_dir), SDR_INBOUND_EMAIL_SECRET=None)

    assert result.exit_code == 0, result.output
    run_inbound()
    assert one(engine, "SELECT message_id FROM message_events WHERE type = 'replied'") == first


def test_a_wrong_secret_is_one_line_and_a_failure(gateway: str, data_dir: Path, sent: Any, engine: Engine) -> None:
    result = sdr("reply", "--url", gateway, SDR_DATA_DIR=str(data_dir), SDR_INBOUND_EMAIL_SECRET="not-the-secret")

    assert result.exit_code == 1
    # The in-process server logs its request to the same stderr; the command says one line.
    [line] = [line for line in result.stderr.splitlines() if line.startswith("sdr:")]
    assert line.startswith("sdr: the inbound hook refused the reply of ")
    assert "403" in line
    assert "Traceback" not in result.output
    assert one(engine, "SELECT count(*) FROM inbound_events") == 0


def test_no_running_gateway_and_no_sink_message_are_one_line_each(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    none = sdr("reply", SDR_DATA_DIR=str(empty), SDR_INBOUND_EMAIL_SECRET="s")
    assert none.exit_code == 2
    assert none.stderr.startswith("sdr: the mail sink has no message yet")

    message = tmp_path / "m.eml"
    message.write_bytes(b"Message-ID: <x@acme.example>\r\nFrom: a@acme.example\r\nTo: b@example.com\r\n\r\nhi\r\n")
    down = sdr("reply", str(message), "--url", f"http://127.0.0.1:{free_port()}", SDR_INBOUND_EMAIL_SECRET="s")
    assert down.exit_code == 1
    assert down.stderr.startswith("sdr: cannot reach the gateway at http://127.0.0.1:")
    assert down.stderr.count("\n") == 1
