"""An auth service for the ops tests: JWKS and a login that knows a few accounts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, get, post
from litestar.params import JSONBody
from pydantic import BaseModel

from libs.errors import EXCEPTION_HANDLERS, Unauthorized
from libs.security import Role
from tests.gateway.apps import healthz, readyz, signer_from_env
from tests.support.tokens import TokenSigner

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Account:
    """Who can sign in."""

    email: str
    org_id: uuid.UUID
    role: Role
    operator: bool
    user_id: uuid.UUID


OPS_ORG = uuid.UUID(int=1)
CUSTOMER_ORG = uuid.UUID(int=2)
ACCOUNTS = {
    a.email: a
    for a in (
        Account("ops@tidewater.test", OPS_ORG, Role.MEMBER, True, uuid.UUID(int=11)),
        Account("admin@customer.test", CUSTOMER_ORG, Role.ADMIN, False, uuid.UUID(int=12)),
        Account("member@customer.test", CUSTOMER_ORG, Role.MEMBER, False, uuid.UUID(int=13)),
    )
}


class LoginBody(BaseModel):
    email: str
    password: str


def create_auth_app(signer: TokenSigner | None = None) -> Litestar:
    """Answer the JWKS and ``POST /api/auth/login`` for the accounts above."""
    signer = signer or signer_from_env()

    @get("/api/auth/jwks.json", sync_to_thread=False)
    def jwks() -> dict[str, Any]:
        return signer.jwks()

    @post("/api/auth/login", status_code=200, sync_to_thread=False)
    def login(data: JSONBody[LoginBody]) -> dict[str, Any]:
        account = ACCOUNTS.get(data.email)
        if account is None or data.password != PASSWORD:
            raise Unauthorized("Unknown e-mail or password.")
        token = signer.mint(
            org_id=account.org_id, user_id=account.user_id, role=account.role, operator=account.operator
        )
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": 900,
            "refresh_token": "r",
            "refresh_expires_in": 1,
        }

    return Litestar(route_handlers=[readyz, healthz, jwks, login], exception_handlers=EXCEPTION_HANDLERS)
