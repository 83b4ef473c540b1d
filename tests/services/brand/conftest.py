"""Fixtures for the brand service: the app on a fresh database, two organizations, actors by role."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from pydantic import SecretStr

from libs.crypto import SecretBox
from libs.db.models import Organization
from libs.db.session import make_engine, system_session
from libs.settings import Environment
from services.brand.app import create_app
from services.brand.service import SmtpCheckSettings
from services.brand.settings import BrandSettings
from tests.support.actors import ApiActor
from tests.support.smtp import SmtpServer
from tests.support.tokens import TokenSigner

SECRET_KEY = "brand-tests-secret-key"
VALID_BRAND: dict[str, Any] = {
    "name": "Acme Robotics",
    "website": "https://acme.example",
    "description": "We build robots that sweep warehouses.",
    "value_proposition": "Cut cleaning costs by half.",
    "target_audience": "Warehouse operations managers",
    "tone_of_voice": "Friendly, concise",
    "proof_points": ["Used by 40 warehouses", "ISO 9001"],
    "forbidden_claims": ["guaranteed savings"],
    "email_signature": "Jane\nAcme Robotics",
    "sms_signoff": "- Jane @ Acme",
    "postal_address": "1 Main St, Springfield, IL 62701, USA",
    "opt_out_email": "Reply 'unsubscribe' or click the link to stop these emails.",
    "opt_out_sms": "Reply STOP to opt out.",
    "opt_out_voicemail": "To stop these calls, reply STOP to this number.",
    "timezone": "America/Chicago",
}


class Actor(ApiActor):
    """Someone calling the API: an organization and a role, with a client."""

    # factories ---------------------------------------------------------------------------

    def create_brand(self, **overrides: Any) -> dict[str, Any]:
        r = self.post("/api/brands", {**VALID_BRAND, **overrides})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def create_sender(self, brand_id: str, **fields: Any) -> dict[str, Any]:
        r = self.post(f"/api/brands/{brand_id}/senders", fields)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def create_email_sender(self, brand_id: str, smtp: SmtpServer | None = None, **overrides: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "kind": "email",
            "from_name": "Jane from Acme",
            "from_address": "jane@acme.example",
            "smtp_host": smtp.host if smtp else "smtp.acme.example",
            "smtp_port": smtp.port if smtp else 587,
            "smtp_security": smtp.security if smtp else "starttls",
            "smtp_username": "jane@acme.example",
            "smtp_password": "correct-horse-battery-staple",
        }
        return self.create_sender(brand_id, **{**fields, **overrides})


@pytest.fixture
def smtp_check() -> SmtpCheckSettings:
    """SMTP checks that trust the loopback server's certificate and time out fast."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(SmtpServer().cafile))
    return SmtpCheckSettings(timeout=1.0, ssl_context=context, allow_private=True)


@pytest.fixture
def brand_settings(database_url: str, redis_url: str) -> BrandSettings:
    return BrandSettings(
        env=Environment.TEST, database_url=database_url, redis_url=redis_url, secret_key=SecretStr(SECRET_KEY)
    )


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([SECRET_KEY])


@pytest.fixture
def client(brand_settings: BrandSettings, signer: TokenSigner, smtp_check: SmtpCheckSettings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    app = create_app(brand_settings, verifier=signer.verifier(), smtp_check=smtp_check)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(database_url, pool_size=1)
    yield engine
    engine.dispose()


def _org(engine: sa.Engine, name: str) -> uuid.UUID:
    org_id = uuid.uuid4()
    with system_session(engine) as s:
        s.add(Organization(id=org_id, name=name))
    return org_id


@pytest.fixture
def alice(client: TestClient, signer: TokenSigner, engine: sa.Engine) -> Actor:  # type: ignore[type-arg]
    """An owner of organization A."""
    return Actor(client, signer, _org(engine, "A"))


@pytest.fixture
def bob(client: TestClient, signer: TokenSigner, engine: sa.Engine) -> Actor:  # type: ignore[type-arg]
    """An owner of organization B."""
    return Actor(client, signer, _org(engine, "B"))
