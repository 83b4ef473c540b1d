"""A secret sent in a bad request never reaches a log line, in either log format.

Every kind of bad body (nested past the decoder's stack, invalid UTF-8, NUL, too large, wrong
types, truncated) carries a canary in its password, token and key fields; the services are built
as they run and log as they run (``configure_logging`` through ``create_service_app``), and the
canary must be in no line they write, whatever the answer.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from litestar import Litestar, get
from litestar.di import NamedDependency
from litestar.exceptions import ImproperlyConfiguredException
from litestar.testing import TestClient
from pydantic import BaseModel, Field, SecretStr, ValidationError
from sqlalchemy import String, bindparam
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from libs.app import create_service_app
from libs.security import PUBLIC
from libs.settings import CommonSettings, Environment
from services.auth.app import create_app as create_auth_app
from services.auth.settings import AuthSettings
from services.brand.app import create_app as create_brand_app
from services.brand.settings import BrandSettings
from services.campaign.app import create_app as create_campaign_app
from services.campaign.settings import CampaignSettings
from tests.support.tokens import TokenSigner

CANARY = "canary-7f3e9b1d-secret"
FORMATS = pytest.mark.parametrize("json_logs", [True, False], ids=["production-json", "development-console"])


def _fields(value: str) -> dict[str, Any]:
    """A body with the canary in every field a secret travels in."""
    return {
        "email": "c@x.example",
        "password": value,
        "new_password": value,
        "current_password": value,
        "refresh_token": value,
        "token": value,
        "api_key": value,
        "auth_token": value,
        "smtp_password": value,
        "organization_name": "Acme",
        "name": "Ada",
        "provider": "openai",
        "kind": "email",
    }


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def bad_bodies() -> dict[str, bytes]:
    """Every kind of bad body, each holding the canary."""
    valid = _encode(_fields(CANARY))
    return {
        "invalid-utf8": valid[:-1] + b', "x": "\xff\xfe"}',
        "nested-list": _encode(_fields(CANARY))[:-1] + b', "deep": ' + b"[" * 100_000,
        "nested-object": _encode(_fields(CANARY))[:-1] + b', "deep": ' + b'{"a":' * 5_000,
        "nested-but-decodable": _encode({**_fields(CANARY), "deep": json.loads("[" * 500 + "]" * 500)}),
        "nul-escaped": _encode(_fields(CANARY + "\x00")),
        "nul-raw": valid.replace(CANARY.encode(), CANARY.encode() + b"\x00"),
        "huge": _encode({**_fields(CANARY), "pad": "x" * 2_000_000}),
        "wrong-types": _encode({key: [CANARY, {"v": CANARY}] for key in _fields(CANARY)}),
        "too-long": _encode(_fields(CANARY * 500)),
        "truncated": valid[:-3],
        "valid-but-wrong": valid,
        "not-an-object": _encode([CANARY, {"password": CANARY}]),
    }


def _fill(path: str) -> str:
    return path.replace("{id}", str(uuid.uuid4()))


# (service, method, path, needs a token)
ROUTES = [
    ("auth", "POST", "/api/auth/login", False),
    ("auth", "POST", "/api/auth/signup", False),
    ("auth", "POST", "/api/auth/refresh", False),
    ("auth", "POST", "/api/auth/logout", False),
    ("auth", "POST", "/api/auth/invites/accept", False),
    ("auth", "POST", "/api/auth/password", True),
    ("brand", "POST", "/api/credentials", True),
    ("brand", "PATCH", "/api/credentials/{id}", True),
    ("brand", "POST", "/api/brands/{id}/senders", True),
    ("campaign", "POST", "/api/leads", True),
]


def _send_bad_bodies(
    targets: Iterable[tuple[TestClient[Any], str, str, dict[str, str]]],
) -> dict[tuple[str, str], int]:
    """Send every bad body to every (client, method, path, headers); no answer may echo the canary."""
    statuses: dict[tuple[str, str], int] = {}
    for client, method, path, headers in targets:
        for name, body in bad_bodies().items():
            r = client.request(
                method, _fill(path), content=body, headers={"content-type": "application/json", **headers}
            )
            statuses[(path, name)] = r.status_code
            assert CANARY not in r.text, (path, name)
    return statuses


def _assert_no_canary(out: str) -> None:
    assert CANARY not in out
    assert CANARY[:12] not in out  # not even cut short


def _assert_refused_not_failed(statuses: dict[tuple[str, str], int]) -> None:
    """Every bad body was refused as such: no server error, and the services' own refusals among the answers."""
    assert {key: status for key, status in statuses.items() if status >= 500} == {}
    assert {400, 413, 422} <= set(statuses.values())


def _services(database_url: str, redis_url: str, signer: TokenSigner, tmp_path: Path, json_logs: bool) -> Any:
    common: dict[str, Any] = {
        "env": Environment.TEST,
        "database_url": database_url,
        "redis_url": redis_url,
        "log_json": json_logs,
    }
    return {
        "auth": create_auth_app(AuthSettings(**common, database_pool_size=2)),
        "brand": create_brand_app(
            BrandSettings(**common, secret_key=SecretStr("canary-key")), verifier=signer.verifier()
        ),
        "campaign": create_campaign_app(
            CampaignSettings(**common, data_dir=tmp_path, secret_key=SecretStr("canary-key")),
            verifier=signer.verifier(),
        ),
    }


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@FORMATS
@pytest.mark.usefixtures("restore_logging")
def test_no_bad_body_puts_a_secret_in_the_log(
    json_logs: bool,
    database_url: str,
    redis_url: str,
    signer: TokenSigner,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    apps = _services(database_url, redis_url, signer, tmp_path, json_logs)
    token = signer.headers(org_id=uuid.uuid4())
    with TestClient(apps["auth"]) as auth, TestClient(apps["brand"]) as brand, TestClient(apps["campaign"]) as campaign:
        clients = {"auth": auth, "brand": brand, "campaign": campaign}
        r = auth.post(
            "/api/auth/signup",
            json={
                "email": "owner@canary.example",
                "password": "correct horse battery",
                "organization_name": "A",
                "name": "O",
            },
        )
        assert r.status_code == 201, r.text
        auth_token = {"Authorization": f"Bearer {r.json()['access_token']}"}
        capsys.readouterr()
        statuses = _send_bad_bodies(
            (clients[service], method, path, (auth_token if service == "auth" else token) if authed else {})
            for service, method, path, authed in ROUTES
        )
    out = capsys.readouterr().err
    assert out.count("request") >= len(statuses)  # every request was logged, so the output was captured
    _assert_no_canary(out)
    _assert_refused_not_failed(statuses)


@FORMATS
@pytest.mark.usefixtures("restore_logging")
def test_no_bad_body_sent_through_the_gateway_puts_a_secret_in_the_log(
    json_logs: bool,
    database_url: str,
    redis_url: str,
    signer: TokenSigner,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The gateway proxies to the real services in this process: its log lines and theirs.
    apps = _services(database_url, redis_url, signer, tmp_path, json_logs)
    settings = GatewaySettings(
        env=Environment.TEST,
        database_url=database_url,
        redis_url=redis_url,
        log_json=json_logs,
        readiness_timeout=1.0,
    )
    gateway = create_gateway(settings, upstream_apps=apps, verifier=signer.verifier())
    token = signer.headers(org_id=uuid.uuid4())
    with TestClient(cast(Any, gateway)) as client:  # the proxy is a plain ASGI app around Litestar
        capsys.readouterr()
        statuses = _send_bad_bodies(
            (client, method, path, token if authed else {})
            for service, method, path, authed in ROUTES
            if not (service == "auth" and authed)  # the auth service trusts only its own keys
        )
    out = capsys.readouterr().err
    assert out.count("service=gateway" if not json_logs else '"service": "gateway"') >= len(statuses)
    _assert_no_canary(out)
    _assert_refused_not_failed(statuses)  # the services answered, not only the gateway


def _boom_app(settings: CommonSettings) -> Litestar:
    @get("/boom", opt=PUBLIC, sync_to_thread=False)
    def boom() -> None:
        password = CANARY  # a local variable of the failing frame
        body = {"api_key": CANARY}
        raise RuntimeError(f"boom after {len(password) + len(body)} characters")

    @get("/query", opt=PUBLIC)
    async def query(system_session: NamedDependency[AsyncSession]) -> None:
        # A statement that fails with the request's value bound to it (PostgreSQL refuses NUL in text).
        await system_session.exec(select(bindparam("value", CANARY + "\x00", type_=String)))

    @get("/validate", opt=PUBLIC, sync_to_thread=False)
    def validate() -> None:
        # A model validated in code (not a request body): its error quotes the input it refused.
        try:
            Key(api_key=CANARY)
        except ValidationError as exc:
            raise RuntimeError("the stored key is unusable") from exc

    @get("/misconfigured", opt=PUBLIC, sync_to_thread=False)
    def misconfigured() -> None:
        token = CANARY  # a local of the failing frame
        raise ImproperlyConfiguredException(f"no handler for {len(token)}")

    handlers = [boom, query, validate, misconfigured]
    return create_service_app(name="canary", title="canary", settings=settings, route_handlers=handlers)


class Key(BaseModel):
    api_key: str = Field(max_length=8)


def _get_logged(
    settings: CommonSettings, json_logs: bool, capsys: pytest.CaptureFixture[str], path: str
) -> tuple[Any, str]:
    """GET ``path`` of the failing app, logging in ``json_logs`` format: the answer and the log, free of the canary."""
    app = _boom_app(settings.model_copy(update={"log_json": json_logs}))
    with TestClient(app) as client:
        r = client.get(path)
    out = capsys.readouterr().err
    _assert_no_canary(out)
    return r, out


@FORMATS
@pytest.mark.usefixtures("restore_logging")
def test_an_unhandled_error_logs_its_traceback_without_the_frames_locals(
    json_logs: bool, settings: CommonSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    r, out = _get_logged(settings, json_logs, capsys, "/boom")
    assert r.status_code == 500
    assert "unhandled_error" in out
    assert "RuntimeError: boom after" in out.replace("\\n", "\n")  # the traceback is there
    assert 'raise RuntimeError(f"boom after' in out.replace('\\"', '"')  # with its source line
    assert out.count("RuntimeError: boom after") == 1  # logged once, by our handler, not by Litestar again


@FORMATS
@pytest.mark.usefixtures("restore_logging")
def test_building_an_app_keeps_the_process_log_handler(
    json_logs: bool, settings: CommonSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    _boom_app(settings.model_copy(update={"log_json": json_logs}))
    logging.getLogger("some.library").warning("library_line")
    out = capsys.readouterr().err
    line = next(x for x in out.splitlines() if "library_line" in x)
    if json_logs:
        assert json.loads(line)["service"] == "canary"  # our renderer, not Litestar's plain formatter
    else:
        assert "service=canary" in line


@FORMATS
@pytest.mark.usefixtures("restore_logging")
def test_twilio_request_bodies_logged_at_info_are_not_written(
    json_logs: bool, settings: CommonSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    _boom_app(settings.model_copy(update={"log_json": json_logs}))
    twilio = logging.getLogger("twilio.http_client")
    twilio.info("-- BEGIN Twilio API Request --\nData: Body=%s", CANARY)  # what the client logs per request
    twilio.warning("twilio_warning_line")
    out = capsys.readouterr().err
    assert "twilio_warning_line" in out
    _assert_no_canary(out)


@FORMATS
@pytest.mark.usefixtures("restore_logging")
def test_a_failed_statement_is_logged_without_its_bound_parameters(
    json_logs: bool, settings: CommonSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    r, out = _get_logged(settings, json_logs, capsys, "/query")
    assert r.status_code == 500
    assert "DataError" in out
    assert "SELECT %(value)s" in out  # the statement is kept
    assert "SQL parameters hidden" in out


@FORMATS
@pytest.mark.usefixtures("restore_logging")
def test_a_validation_error_is_logged_without_the_input_it_refused(
    json_logs: bool, settings: CommonSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    r, logged = _get_logged(settings, json_logs, capsys, "/validate")
    assert r.status_code == 500
    out = logged.replace("\\n", "\n")
    assert "RuntimeError: the stored key is unusable" in out
    assert "ValidationError: 1 validation error(s) for Key" in out  # the cause is kept
    assert "api_key: String should have at most 8 characters [type=string_too_long]" in out


@FORMATS
@pytest.mark.usefixtures("restore_logging")
def test_a_server_error_of_litestar_itself_is_logged_once_without_locals(
    json_logs: bool, settings: CommonSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    r, out = _get_logged(settings, json_logs, capsys, "/misconfigured")
    assert r.status_code == 500
    assert r.json()["detail"] == "Internal Server Error"  # nothing of the error leaves
    assert out.count("server_error") == 1
    assert "ImproperlyConfiguredException" in out
