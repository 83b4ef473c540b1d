"""Sign access tokens the way the auth service does, with a key the tests own."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from libs.security import ALGORITHM, KeySource, Role, TokenVerifier

ISSUER = "tidewater"
AUDIENCE = "tidewater-api"


@dataclass
class TokenSigner:
    """An Ed25519 key with a ``kid`` that mints tokens and publishes its JWKS."""

    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def jwks(self) -> dict[str, Any]:
        """The public half as a JWKS document."""
        jwk = OKPAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}]}

    def verifier(self) -> TokenVerifier:
        """A verifier that trusts only this key."""
        return TokenVerifier(KeySource(jwks=self.jwks()), issuer=ISSUER, audience=AUDIENCE)

    def mint(
        self,
        *,
        org_id: uuid.UUID,
        user_id: uuid.UUID | None = None,
        role: Role = Role.OWNER,
        operator: bool = False,
        ttl: int = 900,
        **claims: Any,
    ) -> str:
        """Return a signed access token; ``claims`` override or add claims."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(user_id or uuid.uuid4()),
            "org": str(org_id),
            "role": role.value,
            "op": operator,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(payload, self.key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def headers(self, **kwargs: Any) -> dict[str, str]:
        """``Authorization`` header for :meth:`mint`."""
        return {"Authorization": f"Bearer {self.mint(**kwargs)}"}
