"""An API caller for service tests: an organization and a role, with a test client."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any, Self

from litestar.testing import TestClient

from libs.security import Role
from tests.support.tokens import TokenSigner


@dataclass
class ApiActor:
    """Someone calling a service: every request carries a token for ``org_id`` and ``role``.

    Service test suites subclass it to add factories that go through their own API.
    """

    client: TestClient  # type: ignore[type-arg]
    signer: TokenSigner
    org_id: uuid.UUID
    role: Role = Role.OWNER
    user_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Authorization (and ``extra``) headers for one request."""
        token = self.signer.headers(org_id=self.org_id, role=self.role, user_id=self.user_id)
        return {**token, **(extra or {})}

    def as_role(self, role: Role) -> Self:
        """The same person in the same organization with another role."""
        return dataclasses.replace(self, role=role)

    def _send(self, method: str, path: str, **kw: Any) -> Any:
        headers = self.headers(kw.pop("headers", None))
        return self.client.request(method, path, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        """GET ``path``."""
        return self._send("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        """POST ``json`` (or files/data in ``kw``) to ``path``."""
        return self._send("POST", path, json=json, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        """PATCH ``path`` with ``json``."""
        return self._send("PATCH", path, json=json, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> Any:
        """PUT ``json`` at ``path``."""
        return self._send("PUT", path, json=json, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        """DELETE ``path``."""
        return self._send("DELETE", path, **kw)
