"""Small real Litestar apps the gateway tests route to: an echo upstream and a fake auth service."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import HttpMethod, Litestar, Request, Response, get, post, route
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.params import FromPath
from litestar.response import Stream
from pydantic import BaseModel

from libs.app import OPENAPI_PATH
from libs.errors import EXCEPTION_HANDLERS, Conflict, Unauthorized
from tests.support.tokens import TokenSigner

GOOD_API_KEY = "twk_good-key-for-tests"


class Echo(BaseModel):
    """What the echo upstream saw."""

    service: str
    method: str
    path: str
    query: str
    headers: list[list[str]]
    body_length: int
    body_sha256: str


def _openapi(title: str) -> OpenAPIConfig:
    return OpenAPIConfig(title=title, version="1.0.0", path=OPENAPI_PATH, render_plugins=[JsonRenderPlugin()])


def _count(state: State) -> None:
    state.hits = state.get("hits", 0) + 1


@get("/readyz", sync_to_thread=False)
def readyz() -> dict[str, str]:
    return {"status": "ok"}


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def create_echo_app(name: str = "echo") -> Litestar:
    """An upstream that answers every path with what it received, plus a few special paths."""

    methods: list[HttpMethod | str] = ["GET", "POST", "PUT", "PATCH", "DELETE"]

    @route("/{rest:path}", http_method=methods, status_code=200, include_in_schema=False)
    async def echo(request: Request[Any, Any, Any], rest: FromPath[str], state: State) -> Response[Any]:
        _count(state)
        if rest.endswith("/problem"):
            raise Conflict("The upstream says no.", hint="kept")
        if rest.endswith("/hang"):
            await anyio.sleep(3600)
        if rest.endswith("/stream"):

            async def chunks() -> AsyncIterator[bytes]:
                for i in range(50):
                    yield f"chunk {i:04d}\n".encode() * 200
                    await anyio.lowlevel.checkpoint()

            return Stream(chunks(), media_type="text/plain", headers={"Connection": "keep-alive, X-Secret-Hop"})
        body = await request.body()
        echo = Echo(
            service=name,
            method=request.method,
            path=request.scope["path"],
            query=request.scope["query_string"].decode(),
            headers=[[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]],
            body_length=len(body),
            body_sha256=hashlib.sha256(body).hexdigest(),
        )
        return Response(
            echo,
            headers={"Keep-Alive": "timeout=5", "X-Secret-Hop": "1", "Connection": "X-Secret-Hop", "X-Kept": "yes"},
        )

    @get(f"/api/{name}/things", sync_to_thread=False)
    def list_things() -> list[dict[str, str]]:
        """List the things (an operation for the merged OpenAPI)."""
        return []

    return Litestar(
        route_handlers=[readyz, healthz, list_things, echo],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=_openapi(f"{name} service"),
        state=State({"hits": 0}),
        request_max_body_size=64 * 1024 * 1024,
    )


def create_fake_auth_app(signer: TokenSigner | None = None) -> Litestar:
    """An auth service that serves a JWKS and exchanges the one good API key for a token."""
    signer = signer or signer_from_env()

    @get("/api/auth/jwks.json", sync_to_thread=False)
    def jwks() -> dict[str, Any]:
        return signer.jwks()

    @post("/api/auth/api-keys/exchange", status_code=200)
    async def exchange(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
        state.exchanges = state.get("exchanges", 0) + 1
        if request.headers.get("authorization") != f"Bearer {GOOD_API_KEY}":
            raise Unauthorized("Unknown API key.")
        import uuid

        token = signer.mint(org_id=uuid.UUID(int=7), ttl=900, scopes=["read"], akid=str(uuid.UUID(int=9)))
        return {"access_token": token, "token_type": "bearer", "expires_in": 900}

    @get("/api/auth/me", sync_to_thread=False)
    def me(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
        _count(state)
        return {"authorization": request.headers.get("authorization", "")}

    return Litestar(
        route_handlers=[readyz, healthz, jwks, exchange, me],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=_openapi("auth service"),
        state=State({"exchanges": 0, "hits": 0}),
    )


SIGNER_KEY_ENV = "TEST_SIGNER_KEY"
SIGNER_KID_ENV = "TEST_SIGNER_KID"


def signer_env(signer: TokenSigner) -> dict[str, str]:
    """Environment that lets a fake auth process sign with ``signer``'s key."""
    from cryptography.hazmat.primitives import serialization

    raw = signer.key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return {SIGNER_KEY_ENV: raw.hex(), SIGNER_KID_ENV: signer.kid}


def signer_from_env() -> TokenSigner:
    """The signer a test handed to this process through :func:`signer_env`."""
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(os.environ[SIGNER_KEY_ENV]))
    return TokenSigner(kid=os.environ[SIGNER_KID_ENV], key=key)
