"""The README's first session, run verbatim in a shell against a real ``sdr dev``.

Only two things change: the gateway URL and the SMTP sink's port, because the test's system
listens on free ports. Everything else (sign-up, the token, the brand, the sender on the sink,
the lead, the campaign, enrolment and launch) is exactly what a newcomer pastes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from tests.conftest import REDIS_TEST_DB, ROOT
from tests.support.dev import DevSystem, readyz, run_sdr_dev, wait_for
from tests.support.servers import create_database, drop_database

pytestmark = pytest.mark.e2e

README_GATEWAY = "http://127.0.0.1:8000"
README_SINK_PORT = '"smtp_port": 1025'


def first_session() -> str:
    """The shell block that follows "A first session" in the README."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"A first session.*?```sh\n(.*?)```", readme, re.S)
    assert found is not None, "the README has no first-session block"
    return found.group(1)


@pytest.fixture
def system(tmp_path: Path, pg_server_url: str, template_db: str, redis_server_url: str) -> Iterator[DevSystem]:
    database_url = create_database(pg_server_url, template=template_db)
    redis_url = redis_server_url.rsplit("/", 1)[0] + f"/{REDIS_TEST_DB}"
    Redis.from_url(redis_url).flushdb()
    try:
        with run_sdr_dev(tmp_path, database_url=database_url, redis_url=redis_url) as running:
            wait_for(lambda: readyz(running)[0] == 200, "/readyz to be green", running, timeout=180)
            yield running
    finally:
        Redis.from_url(redis_url).flushdb()
        drop_database(pg_server_url, database_url)


def test_the_readme_session_uses_the_urls_it_names() -> None:
    session = first_session()
    assert README_GATEWAY in session
    assert README_SINK_PORT in session


@pytest.mark.timeout(240)
def test_the_readme_first_session_sends_its_first_email(system: DevSystem, tmp_path: Path) -> None:
    script = first_session().replace(README_GATEWAY, system.gateway)
    script = script.replace(README_SINK_PORT, f'"smtp_port": {system.sink_port}')
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run(  # our own README, run as a user would
        [bash, "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"

    # Every call answered JSON, one document per line, the last one the campaign's messages.
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, done.stdout
    readiness = httpx.Response(200, content=lines[0]).json()
    assert [gap["code"] for gap in readiness["channels"]["email"]["missing"]] == ["email_sender"]

    # The message goes out through the sink and the ledger says so.
    login = httpx.post(
        f"{system.gateway}/api/auth/login",
        json={"email": "ada@acme.example", "password": "correct horse battery"},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]

    def sent() -> list[dict[str, Any]]:
        page = httpx.get(
            f"{system.gateway}/api/messages", headers={"authorization": f"Bearer {token}"}, timeout=30
        ).json()
        return [m for m in page["items"] if m["status"] == "sent"]

    wait_for(lambda: bool(sent()), "the first email to be sent", system, timeout=60)
    [message] = sent()
    assert message["subject"] == "Grace, a note from Acme"
    mails = sorted((system.data_dir / "mail" / "new").iterdir())
    assert len(mails) == 1
    mail = message_from_bytes(mails[0].read_bytes(), policy=default)
    assert mail["To"] == "grace@hopper.example"
    assert mail["Subject"] == "Grace, a note from Acme"
