"""Sign-up, login, the caller, switching organization and passwords (A8, A9)."""

from __future__ import annotations

import re
import statistics
import time
import uuid

import sqlalchemy as sa
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient

from libs.db.session import make_engine
from services.auth.settings import AuthSettings
from tests.services.auth.conftest import (
    PASSWORD,
    bearer,
    invite_and_join,
    login,
    running,
    signup,
    unique_email,
)

ARGON2_PHC = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$")


def _password_hash(database_url: str, email: str) -> str:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        value = conn.execute(
            sa.text("SELECT password_hash FROM users WHERE email_normalized = :e"), {"e": email.lower()}
        ).scalar_one()
    engine.dispose()
    return str(value)


def test_signup_creates_an_organization_and_its_owner(client: TestClient[Litestar]) -> None:
    owner = signup(client, org="Acme Corp")
    body = owner.body
    assert body["role"] == "owner"
    assert body["organization"]["name"] == "Acme Corp"
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert "password" not in str(body).lower()
    me = client.get("/api/auth/me", headers=owner.headers).json()
    assert me["user"]["email"] == owner.email
    assert me["organization"]["id"] == str(owner.org_id)
    assert me["memberships"] == [
        {"organization_id": str(owner.org_id), "organization_name": "Acme Corp", "role": "owner"}
    ]


def test_duplicate_signup_is_a_409_whatever_the_case(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    r = client.post(
        "/api/auth/signup",
        json={"email": owner.email.upper(), "password": PASSWORD, "organization_name": "Other"},
    )
    assert r.status_code == 409
    assert r.json()["code"] == "EmailTaken"


def test_signup_refuses_short_passwords_and_bad_emails(client: TestClient[Litestar]) -> None:
    r = client.post("/api/auth/signup", json={"email": "not-an-email", "password": "short", "organization_name": "X"})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"email", "password"}


def test_unknown_fields_are_refused(client: TestClient[Litestar]) -> None:
    r = client.post(
        "/api/auth/signup",
        json={"email": unique_email(), "password": PASSWORD, "organization_name": "X", "operator": True},
    )
    assert r.status_code == 422


def test_huge_password_is_refused_before_hashing(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    started = time.perf_counter()
    r = client.post("/api/auth/login", json={"email": owner.email, "password": "x" * 100_000})
    elapsed = time.perf_counter() - started
    assert r.status_code == 422
    assert elapsed < 0.5  # no argon2 run (a hash of 100 KB at these parameters takes far longer)
    assert "x" * 50 not in r.text


def test_long_passphrases_work_without_truncation(client: TestClient[Litestar]) -> None:
    passphrase = "p" * 79 + "A" + "q" * 20
    owner = signup(client, password=passphrase)
    assert login(client, owner.email, passphrase).user_id == owner.user_id
    near_miss = "p" * 79 + "B" + "q" * 20
    assert client.post("/api/auth/login", json={"email": owner.email, "password": near_miss}).status_code == 401
    sixty_four = "correct horse battery staple " * 2 + "abcdef"
    assert len(sixty_four) == 64
    other = signup(client, password=sixty_four)
    assert login(client, other.email, sixty_four).user_id == other.user_id


def test_password_is_stored_as_argon2id_at_owasp_parameters(client: TestClient[Litestar], database_url: str) -> None:
    owner = signup(client)
    stored = _password_hash(database_url, owner.email)
    match = ARGON2_PHC.match(stored)
    assert match, stored
    memory, time_cost, parallelism = (int(g) for g in match.groups())
    # OWASP: m=19 MiB, t=2, p=1 at least (or an equivalent trade of memory for time).
    assert memory >= 19 * 1024
    assert time_cost >= 2
    assert parallelism >= 1
    assert PASSWORD not in stored


def test_login_rehashes_a_hash_made_with_old_parameters(client: TestClient[Litestar], database_url: str) -> None:
    owner = signup(client)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE users SET password_hash = :h WHERE id = :id"), {"h": weak, "id": owner.user_id})
    engine.dispose()
    login(client, owner.email)
    upgraded = _password_hash(database_url, owner.email)
    assert upgraded != weak
    assert "m=19456,t=2,p=1" in upgraded
    login(client, owner.email)  # the new hash still verifies


def test_wrong_password_and_unknown_email_get_the_same_answer(auth_settings: AuthSettings) -> None:
    # Thresholds out of the way: this test is about the answer, not the lockout.
    with running(
        auth_settings, login_account_soft=100, login_account_hard=100, login_address_soft=100, login_address_hard=100
    ) as client:
        owner = signup(client)
        wrong = {"email": owner.email, "password": "not the password at all"}
        unknown = {"email": unique_email("nobody"), "password": "not the password at all"}

        def attempt(body: dict[str, str]) -> tuple[float, int, dict[str, object], dict[str, str]]:
            started = time.perf_counter()
            r = client.post("/api/auth/login", json=body)
            elapsed = time.perf_counter() - started
            problem = {k: v for k, v in r.json().items() if k != "request_id"}
            headers = {k: v for k, v in r.headers.items() if k in ("www-authenticate", "content-type")}
            return elapsed, r.status_code, problem, headers

        attempt(unknown)  # the first unknown email computes the dummy hash once
        wrong_runs = []
        unknown_runs = []
        for _ in range(7):
            wrong_runs.append(attempt(wrong))
            unknown_runs.append(attempt(unknown))
        assert {(s, str(p), str(h)) for _, s, p, h in wrong_runs} == {
            (s, str(p), str(h)) for _, s, p, h in unknown_runs
        }
        assert wrong_runs[0][1] == 401
        assert wrong_runs[0][2]["detail"] == "Invalid email or password."
        wrong_median = statistics.median(t for t, *_ in wrong_runs)
        unknown_median = statistics.median(t for t, *_ in unknown_runs)
        # Both run one argon2 verification; without the dummy hash the unknown email answers ~10x faster.
        assert abs(wrong_median - unknown_median) < 0.5 * max(wrong_median, unknown_median), (
            wrong_median,
            unknown_median,
        )


def test_login_picks_the_organization_asked_for(client: TestClient[Litestar]) -> None:
    first = signup(client, org="First")
    second_owner = signup(client, org="Second")
    joined = invite_and_join(client, second_owner, email=None)
    # The member of "Second" is also invited into "First": they now belong to two organizations.
    r = client.post("/api/auth/invites", json={"email": joined.email, "role": "viewer"}, headers=first.headers)
    token = r.json()["token"]
    r = client.post("/api/auth/invites/accept", json={"token": token, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert login(client, joined.email).org_id == second_owner.org_id  # oldest membership
    picked = login(client, joined.email, organization_id=str(first.org_id))
    assert picked.org_id == first.org_id
    assert picked.body["role"] == "viewer"
    r = client.post(
        "/api/auth/login", json={"email": joined.email, "password": PASSWORD, "organization_id": str(uuid.uuid4())}
    )
    assert r.status_code == 403


def test_switching_organization_issues_tokens_for_the_other_one(client: TestClient[Litestar]) -> None:
    a = signup(client, org="A")
    b = signup(client, org="B")
    r = client.post("/api/auth/invites", json={"email": a.email, "role": "admin"}, headers=b.headers)
    r = client.post("/api/auth/invites/accept", json={"token": r.json()["token"], "password": PASSWORD})
    assert r.status_code == 200
    r = client.post("/api/auth/switch", json={"organization_id": str(b.org_id)}, headers=a.headers)
    assert r.status_code == 200, r.text
    switched = r.json()
    assert switched["organization"]["id"] == str(b.org_id)
    assert switched["role"] == "admin"
    me = client.get("/api/auth/me", headers=bearer(switched["access_token"])).json()
    assert me["organization"]["id"] == str(b.org_id)
    assert {m["organization_id"] for m in me["memberships"]} == {str(a.org_id), str(b.org_id)}
    # An organization the user does not belong to is not even acknowledged.
    c = signup(client, org="C")
    r = client.post("/api/auth/switch", json={"organization_id": str(c.org_id)}, headers=a.headers)
    assert r.status_code == 404


def test_changing_the_password_signs_out_every_session(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    other_session = login(client, owner.email)
    new_password = "an entirely new passphrase"
    r = client.post(
        "/api/auth/password",
        json={"current_password": "wrong current password", "new_password": new_password},
        headers=owner.headers,
    )
    assert r.status_code == 401
    r = client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    for old in (owner.refresh_token, other_session.refresh_token):
        assert client.post("/api/auth/refresh", json={"refresh_token": old}).status_code == 401
    assert client.post("/api/auth/refresh", json={"refresh_token": r.json()["refresh_token"]}).status_code == 200
    assert client.post("/api/auth/login", json={"email": owner.email, "password": PASSWORD}).status_code == 401
    login(client, owner.email, new_password)
