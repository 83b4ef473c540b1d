"""``sdr create-operator``: creates or flags a user; only operators carry the ``op`` claim."""

from __future__ import annotations

import click
import jwt
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from services.auth.cli import create_operator, rotate_signing_keys
from services.auth.settings import AuthSettings
from tests.services.auth.conftest import PASSWORD, create_operator_account, login, signup


def _claims(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_a_new_operator_gets_an_invite_and_the_op_claim(
    client: TestClient[Litestar], auth_settings: AuthSettings
) -> None:
    operator = create_operator_account(client, auth_settings)
    assert _claims(operator.access_token)["op"] is True
    assert operator.body["user"]["operator"] is True
    assert operator.body["organization"]["name"] == "Tidewater operations"
    again = login(client, operator.email)
    assert _claims(again.access_token)["op"] is True


def test_an_existing_user_is_flagged(
    client: TestClient[Litestar], auth_settings: AuthSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    user = signup(client)
    assert _claims(user.access_token)["op"] is False
    create_operator(user.email.upper(), auth_settings)
    out = capsys.readouterr().out
    assert "is now an operator" in out
    assert "twi_" not in out
    assert PASSWORD not in out
    assert _claims(login(client, user.email).access_token)["op"] is True


def test_a_bad_address_is_refused(auth_settings: AuthSettings) -> None:
    with pytest.raises(click.ClickException, match="not a valid email address"):
        create_operator("not an address", auth_settings)


def test_rotation_from_the_command_line(
    client: TestClient[Litestar], auth_settings: AuthSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {k["kid"] for k in client.get("/api/auth/jwks.json").json()["keys"]}
    rotate_signing_keys(auth_settings)
    kid = capsys.readouterr().out.split()[-1]
    after = {k["kid"] for k in client.get("/api/auth/jwks.json").json()["keys"]}
    assert after == before | {kid}
