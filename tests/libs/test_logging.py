"""Redaction in the logs a process really writes: secret-named keys never carry their values out."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import structlog

from libs.logging import configure_logging, get_logger

ROOT = Path(__file__).resolve().parents[2]

# Every value is unique, so finding any of them anywhere in the output is a leak.
SECRETS = {
    "token": "tok-9f1c-leak",
    "access_token": "eyJ-access-leak",
    "refresh_token": "rt-77aa-leak",
    "password": "hunter2-leak",
    "smtp_password": "smtp-pw-leak",
    "secret": "shh-leak",
    "client_secret": "client-secret-leak",
    "api_key": "twk_apikey-leak",
    "authorization": "Bearer header-leak",
    "cookie": "sdr_ops=cookie-leak",
    "Authorization": "Bearer mixed-case-leak",
}

TOP_LEVEL = """
    log = get_logger("probe")
    structlog.contextvars.bind_contextvars(session_token="bound-context-leak")
    log.info("probe_event", org_id="org-1", **SECRETS)
    log.warning("probe_positional", token=SECRETS["token"])
"""

NESTED = """
    log = get_logger("probe")
    log.info(
        "probe_nested",
        org_id="org-1",
        account={"host": "smtp.example", "password": "nested-pw-leak", "api_key": "nested-key-leak"},
        headers={"Authorization": "Bearer nested-header-leak", "accept": "application/json"},
        request={"auth": {"token": "deep-token-leak"}},
    )
"""


def _run(body: str, *, json_logs: bool) -> str:
    """Configure logging as a process does (``configure_logging``), run ``body``, return what reached stderr."""
    script = textwrap.dedent(
        f"""
        import structlog
        from libs.logging import configure_logging, get_logger
        SECRETS = {SECRETS!r}
        configure_logging(service="probe", level="INFO", json={json_logs!r})
        """
    ) + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == ""  # every log line goes to stderr
    return done.stderr


@pytest.mark.parametrize("json_logs", [True, False], ids=["production-json", "development-console"])
def test_values_under_secret_named_keys_never_reach_the_output(json_logs: bool) -> None:
    out = _run(TOP_LEVEL, json_logs=json_logs)
    for written in ("probe_event", "probe_positional", "org-1"):  # the lines were written
        assert written in out
    for value in [*SECRETS.values(), "bound-context-leak"]:
        assert value not in out
    assert "[redacted]" in out


def test_the_production_json_line_keeps_each_secret_key_with_a_redacted_value() -> None:
    lines = [json.loads(line) for line in _run(TOP_LEVEL, json_logs=True).splitlines() if line.strip()]
    event = next(line for line in lines if line["event"] == "probe_event")
    assert event["org_id"] == "org-1"
    assert event["service"] == "probe"
    assert {key: event[key] for key in SECRETS} == dict.fromkeys(SECRETS, "[redacted]")
    assert event["session_token"] == "[redacted]"  # bound context is redacted too
    positional = next(line for line in lines if line["event"] == "probe_positional")
    assert positional["token"] == "[redacted]"


@pytest.mark.parametrize("json_logs", [True, False], ids=["production-json", "development-console"])
def test_redaction_in_this_process_as_the_services_configure_it(
    json_logs: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    # The same check in-process (as create_service_app configures it), so the mutation run sees it.
    configure_logging(service="probe", level="INFO", json=json_logs)
    try:
        structlog.contextvars.bind_contextvars(session_token="bound-context-leak")
        get_logger("probe").info("probe_event", org_id="org-1", **SECRETS)
        logging.getLogger("probe.stdlib").warning("stdlib_line")
    finally:
        structlog.contextvars.unbind_contextvars("session_token")
    out = capsys.readouterr().err
    for written in ("probe_event", "org-1", "stdlib_line"):
        assert written in out
    for value in [*SECRETS.values(), "bound-context-leak"]:
        assert value not in out
    if json_logs:
        line = json.loads(next(x for x in out.splitlines() if "probe_event" in x))
        assert {key: line[key] for key in SECRETS} == dict.fromkeys(SECRETS, "[redacted]")
        assert line["event"] == "probe_event"
        assert line["level"] == "info"
        assert line["service"] == "probe"


@pytest.mark.parametrize("json_logs", [True, False], ids=["production-json", "development-console"])
def test_values_under_secret_named_keys_of_nested_dicts_never_reach_the_output(json_logs: bool) -> None:
    out = _run(NESTED, json_logs=json_logs)
    assert "probe_nested" in out
    assert "smtp.example" in out
    for value in ("nested-pw-leak", "nested-key-leak", "nested-header-leak", "deep-token-leak"):
        assert value not in out
