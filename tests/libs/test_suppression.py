"""libs.suppression: normalisation, erasure hashes, and the scope rules of the suppression query."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from libs.crypto import SecretBox, SecretBoxError
from libs.db.models import Organization
from libs.db.models.leads import Lead, Suppression, SuppressionKind
from libs.db.session import Database, make_engine, system_session, tenant_session
from libs.settings import CommonSettings
from libs.suppression import (
    InvalidContact,
    _hmac_sql,
    contact_hash,
    covering_channels,
    email_domain,
    find_suppressed,
    find_suppressed_sync,
    guess_kind,
    hash_key,
    load_hash_key,
    normalize_domain,
    normalize_email,
    normalize_phone,
    normalize_value,
    refresh_lead_status_statement,
    suppress_statement,
    suppressed_clause,
)

KEY = hash_key("test-secret")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def org(engine: Engine) -> uuid.UUID:
    org_id = uuid.uuid4()
    with system_session(engine) as s:
        s.add(Organization(id=org_id, name="A"))
    return org_id


def lead(engine: Engine, org_id: uuid.UUID, email: str | None = None, phone: str | None = None) -> uuid.UUID:
    row = Lead(
        org_id=org_id,
        email=email,
        email_normalized=normalize_email(email) if email else None,
        phone=normalize_phone(phone) if phone else None,
    )
    with tenant_session(engine, org_id) as s:
        s.add(row)
    return row.id


def suppress(engine: Engine, org_id: uuid.UUID, channel: str, kind: str, value: str, reason: str = "manual") -> None:
    with tenant_session(engine, org_id) as s:
        s.connection().execute(
            suppress_statement(org_id=org_id, channel=channel, kind=kind, value=value, reason=reason, source="test")
        )


def suppressed_on(engine: Engine, org_id: uuid.UUID, lead_id: uuid.UUID, channel: str | None) -> list[str]:
    with tenant_session(engine, org_id) as s:
        hits = find_suppressed_sync(s, org_id=org_id, lead_ids=[lead_id], channel=channel, key=KEY)
    return sorted(h.reason for h in hits.get(lead_id, []))


def test_normalisation() -> None:
    assert normalize_email("  John.Doe@EXAMPLE.com ") == "john.doe@example.com"
    assert normalize_phone("(212) 555-0100") == "+12125550100"
    assert normalize_phone("06 12 34 56 78", "FR") == "+33612345678"
    assert normalize_domain("@Acme.COM.") == "acme.com"
    assert guess_kind("@acme.com") == "domain"
    assert guess_kind("acme.com") == "domain"
    assert guess_kind("a@acme.com") == "email"
    assert guess_kind("+1 212 555 0100") == "phone"
    assert normalize_domain("Xerox.example") == "xerox.example"
    assert email_domain("a@b@acme.com") == "acme.com"
    assert normalize_value("email", " A@Acme.COM ") == "a@acme.com"
    assert normalize_value(SuppressionKind.PHONE, "(212) 555-0100") == "+12125550100"
    assert normalize_value("phone", "06 12 34 56 78", "FR") == "+33612345678"
    assert normalize_value("domain", "@ACME.com") == "acme.com"
    digest = contact_hash(KEY, "email", "a@acme.com")
    assert normalize_value("hash", f" {digest.upper()} ") == digest
    for bad_hash in (digest[:-1], digest + "0", digest[:-1] + "g"):
        with pytest.raises(InvalidContact, match="64 hexadecimal"):
            normalize_value("hash", bad_hash)
    assert normalize_domain("mail.ACMEX.") == "mail.acmex"
    for bad, fn in (("nope", normalize_email), ("123", normalize_phone), ("a@b", normalize_domain)):
        with pytest.raises(InvalidContact):
            fn(bad)
    for bad in ("@", " . ", "a@b", "@x@acme.com"):
        with pytest.raises(InvalidContact, match=r"^The domain is not valid\.$"):
            normalize_domain(bad)
    with pytest.raises(InvalidContact) as refused:
        normalize_domain("acme..com")
    assert str(refused.value) not in ("", "None")
    assert "@-sign" not in str(refused.value)


def test_scope_rules() -> None:
    assert set(covering_channels("email")) == {"email", "all"}
    assert set(covering_channels("sms")) == {"sms", "all"}
    assert set(covering_channels("voicemail")) == {"voicemail", "sms", "all"}
    assert set(covering_channels("email", every_opt_out_global=True)) == {"email", "sms", "voicemail", "all"}


def test_sql_hmac_equals_python_hmac(engine: Engine) -> None:
    with engine.connect() as conn:
        for value in ("bob@example.com", "josé@bücher.de", "+12125550100"):
            sql = conn.execute(sa.select(_hmac_sql(KEY, "email", sa.literal(value)))).scalar_one()
            assert sql == contact_hash(KEY, "email", value)


def test_sms_stop_covers_sms_and_voicemail_not_email(engine: Engine, org: uuid.UUID) -> None:
    lead_id = lead(engine, org, email="a@example.com", phone="+12125550100")
    suppress(engine, org, "sms", "phone", "+12125550100", "stop")
    assert suppressed_on(engine, org, lead_id, "sms") == ["stop"]
    assert suppressed_on(engine, org, lead_id, "voicemail") == ["stop"]
    assert suppressed_on(engine, org, lead_id, "email") == []


def test_email_unsubscribe_covers_email_only(engine: Engine, org: uuid.UUID) -> None:
    lead_id = lead(engine, org, email="a@example.com", phone="+12125550100")
    suppress(engine, org, "email", "email", "a@example.com", "unsubscribe")
    assert suppressed_on(engine, org, lead_id, "email") == ["unsubscribe"]
    assert suppressed_on(engine, org, lead_id, "sms") == []
    assert suppressed_on(engine, org, lead_id, "voicemail") == []


def test_all_covers_everything_and_domains_cover_their_addresses(engine: Engine, org: uuid.UUID) -> None:
    a = lead(engine, org, email="x@acme.com")
    b = lead(engine, org, email="y@other.com", phone="+14155552671")
    suppress(engine, org, "email", "domain", "acme.com")
    suppress(engine, org, "all", "phone", "+14155552671", "complaint")
    assert suppressed_on(engine, org, a, "email") == ["manual"]
    assert suppressed_on(engine, org, a, "sms") == []
    assert [suppressed_on(engine, org, b, c) for c in ("email", "sms", "voicemail")] == [["complaint"]] * 3


def test_erasure_hash_and_erased_leads_are_suppressed_everywhere(engine: Engine, org: uuid.UUID) -> None:
    shared = lead(engine, org, email="other@example.com", phone="+12125550100")
    suppress(engine, org, "all", "hash", contact_hash(KEY, "phone", "+12125550100"), "erasure")
    assert suppressed_on(engine, org, shared, "sms") == ["erasure"]
    erased = lead(engine, org, email="gone@example.com")
    with tenant_session(engine, org) as s:
        s.connection().execute(
            sa.text("UPDATE leads SET email = NULL, email_normalized = NULL, erased_at = now() WHERE id = :id"),
            {"id": erased},
        )
    assert suppressed_on(engine, org, erased, "email") == ["erasure"]


def test_the_clause_and_the_status_refresh_agree_with_the_query(engine: Engine, org: uuid.UUID) -> None:
    blocked = lead(engine, org, email="a@blocked.com")
    fine = lead(engine, org, email="b@fine.com")
    suppress(engine, org, "email", "domain", "blocked.com")
    with tenant_session(engine, org) as s:
        ids = (
            s.connection()
            .execute(
                sa.select(Lead.__table__.c.id).where(suppressed_clause(org_id=org, channel="email", key=KEY))  # type: ignore[attr-defined]
            )
            .scalars()
            .all()
        )
        s.connection().execute(refresh_lead_status_statement(org_id=org, key=KEY))
        statuses = dict(s.connection().execute(sa.text("SELECT id, status FROM leads")).all())
    assert ids == [blocked]
    assert statuses == {blocked: "suppressed", fine: "active"}


def test_another_organizations_suppressions_do_not_apply(engine: Engine, org: uuid.UUID) -> None:
    other = uuid.uuid4()
    with system_session(engine) as s:
        s.add(Organization(id=other, name="B"))
    lead_id = lead(engine, org, email="a@example.com")
    suppress(engine, other, "all", "email", "a@example.com")
    assert suppressed_on(engine, org, lead_id, "email") == []


async def test_async_session_runs_the_same_query(database_url: str, engine: Engine, org: uuid.UUID) -> None:
    lead_id = lead(engine, org, email="a@example.com")
    suppress(engine, org, "email", "email", "a@example.com", "bounce")
    db = Database.from_url(database_url)
    async with db.tenant(org) as s:
        hits = await find_suppressed(s, org_id=org, lead_ids=[lead_id], channel="email", key=KEY)
    await db.dispose()
    assert [(h.reason, h.kind) for h in hits[lead_id]] == [("bounce", "email")]
    assert hits[lead_id][0].suppression_id is not None


async def test_async_query_keeps_the_channel_scope_the_hashes_and_the_global_switch(
    database_url: str, engine: Engine, org: uuid.UUID
) -> None:
    texted = lead(engine, org, email="a@example.com", phone="+12125550100")
    erased_contact = lead(engine, org, email="gone@example.com")
    suppress(engine, org, "sms", "phone", "+12125550100", "stop")
    suppress(engine, org, "all", "hash", contact_hash(KEY, "email", "gone@example.com"), "erasure")
    db = Database.from_url(database_url)
    try:
        async with db.tenant(org) as s:
            ids = [texted, erased_contact]
            email = await find_suppressed(s, org_id=org, lead_ids=ids, channel="email", key=KEY)
            everywhere = await find_suppressed(
                s, org_id=org, lead_ids=ids, channel="email", key=KEY, every_opt_out_global=True
            )
            assert await find_suppressed(s, org_id=org, lead_ids=[], channel="email", key=KEY) == {}
    finally:
        await db.dispose()
    assert set(email) == {erased_contact}  # the SMS STOP does not block email; the erasure hash does
    assert [h.reason for h in everywhere[texted]] == ["stop"]


def test_the_status_refresh_counts_hashes_lifts_removed_suppressions_and_keeps_to_its_leads(
    engine: Engine, org: uuid.UUID
) -> None:
    hashed = lead(engine, org, email="gone@example.com")
    listed = lead(engine, org, email="b@example.com")
    untouched = lead(engine, org, email="c@example.com")
    suppress(engine, org, "all", "hash", contact_hash(KEY, "email", "gone@example.com"), "erasure")
    suppress(engine, org, "email", "email", "b@example.com")
    suppress(engine, org, "email", "email", "c@example.com")

    def refresh(lead_ids: list[uuid.UUID] | None) -> dict[uuid.UUID, str]:
        with tenant_session(engine, org) as s:
            s.connection().execute(refresh_lead_status_statement(org_id=org, key=KEY, lead_ids=lead_ids))
            return dict(s.connection().execute(sa.text("SELECT id, status FROM leads")).all())

    assert refresh([hashed, listed]) == {hashed: "suppressed", listed: "suppressed", untouched: "active"}
    with tenant_session(engine, org) as s:
        s.connection().execute(sa.text("DELETE FROM suppressions WHERE value = 'b@example.com'"))
    assert refresh(None) == {hashed: "suppressed", listed: "active", untouched: "suppressed"}


def test_suppress_statement_is_idempotent(engine: Engine, org: uuid.UUID) -> None:
    for _ in range(2):
        suppress(engine, org, "email", "email", "a@example.com")
    with tenant_session(engine, org) as s:
        assert s.connection().execute(sa.select(sa.func.count()).select_from(Suppression)).scalar_one() == 1


def _settings(secret: str, older: str | None = None) -> CommonSettings:
    return CommonSettings(secret_key=secret, encryption_keys=older)  # type: ignore[arg-type]


def _load(engine: Engine, settings: CommonSettings) -> bytes:
    with engine.begin() as conn:
        return load_hash_key(conn, settings)


def test_the_erasure_key_is_stored_once_and_survives_a_secret_rotation(engine: Engine, org: uuid.UUID) -> None:
    first = _load(engine, _settings("secret-one"))
    assert first == hash_key("secret-one")  # hashes made before the key was stored keep matching
    erased = contact_hash(first, "email", "gone@example.com")
    with system_session(engine) as s:
        s.execute(suppress_statement(org_id=org, kind="hash", value=erased, channel="all", reason="erasure"))
    with engine.connect() as conn:
        sealed_before = conn.execute(sa.text("SELECT value FROM system_secrets")).scalar_one()
    assert first.hex() not in sealed_before  # sealed at rest

    # Rotation: a new secret, the old one kept for decryption. Same key; re-sealed under the new secret.
    rotated = _settings("secret-two", older="secret-one")
    assert _load(engine, rotated) == first
    with engine.connect() as conn:
        sealed_after = conn.execute(sa.text("SELECT value FROM system_secrets")).scalar_one()
    assert sealed_after != sealed_before
    assert SecretBox(["secret-two"]).key_id(sealed_after) == SecretBox(["secret-two"]).primary_kid
    # Once re-sealed the old secret may go: the key, and the erased person's hash, still match.
    key = _load(engine, _settings("secret-two"))
    assert key == first
    candidate = sa.values(sa.column("email_normalized", sa.String), sa.column("phone", sa.String), name="c").data(
        [("gone@example.com", None), ("kept@example.com", None)]
    )
    gate = suppressed_clause(org_id=org, channel="email", key=key, leads=candidate)
    with tenant_session(engine, org) as s:
        assert s.execute(sa.select(candidate.c.email_normalized).where(gate)).scalars().all() == ["gone@example.com"]

    # A secret that never sealed the stored key cannot silently start a new one.
    with pytest.raises(SecretBoxError):
        _load(engine, _settings("secret-three"))


def test_the_tenant_role_cannot_read_system_secrets(engine: Engine, org: uuid.UUID) -> None:
    _load(engine, _settings("secret-one"))
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), tenant_session(engine, org) as s:
        s.execute(sa.text("SELECT value FROM system_secrets"))
