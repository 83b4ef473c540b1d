"""A loopback HTTP server speaking the Twilio Messages/Calls and OpenAI chat completions APIs.

It runs aiohttp in a thread, records every request, and answers each call from a per-endpoint
script (success by default): ``server.script("messages", twilio_error(429, 20429), ok())``.
The real ``twilio`` and ``openai`` clients are pointed at ``server.url``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

ENDPOINTS = ("messages", "calls", "chat")


@dataclass(frozen=True)
class Behaviour:
    """How the server answers one call."""

    kind: str = "ok"
    status: int = 200
    code: int | None = None
    message: str = ""
    seconds: float = 0.0
    content: str | None = None
    finish_reason: str = "stop"


def ok() -> Behaviour:
    """Answer as the provider does on success."""
    return Behaviour("ok")


def twilio_error(status: int, code: int | None = None, message: str = "error") -> Behaviour:
    """Answer with a Twilio error document (``status``, Twilio error ``code``)."""
    return Behaviour("error", status=status, code=code, message=message)


def http_error(status: int, message: str = "error") -> Behaviour:
    """Answer with a bare HTTP error (OpenAI style body)."""
    return Behaviour("error", status=status, message=message)


def hang(seconds: float = 30.0) -> Behaviour:
    """Wait ``seconds`` (past the client's timeout) before answering success."""
    return Behaviour("hang", seconds=seconds)


def invalid_json() -> Behaviour:
    """Answer 200 with a body that is not JSON (Twilio) or content that is not JSON (OpenAI)."""
    return Behaviour("invalid_json")


def completion(content: str | dict[str, Any], *, finish_reason: str = "stop") -> Behaviour:
    """Answer a chat completion whose message content is ``content``."""
    text = content if isinstance(content, str) else json.dumps(content)
    return Behaviour("ok", content=text, finish_reason=finish_reason)


@dataclass
class Recorded:
    """One request the server received."""

    endpoint: str
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)
    json: Any = None

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        """The Basic credentials sent, if any."""
        value = self.headers.get("Authorization", "")
        if not value.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        return user, password


def default_completion(payload: dict[str, Any]) -> str:
    """A well-formed answer for the requested schema: what a good model would write."""
    fmt = payload.get("response_format") or {}
    name = (fmt.get("json_schema") or {}).get("name", "")
    if name.startswith("email"):
        return json.dumps({"subject": "A quick idea for your team", "body": "Hi there,\n\nA short note from us."})
    if name.startswith("sms"):
        return json.dumps({"text": "Hi, a short note from us. Interested in a quick chat?"})
    if name.startswith("voicemail"):
        return json.dumps({"script": "Hi, this is a short message from our team. Call us back when you can."})
    return json.dumps({"text": "ok"})


class ProviderServer:
    """The loopback Twilio + OpenAI server; a context manager that owns its thread."""

    def __init__(self, completion_writer: Callable[[dict[str, Any]], str] = default_completion) -> None:
        self.completion_writer = completion_writer
        self.requests: list[Recorded] = []
        self._scripts: dict[str, deque[Behaviour]] = {name: deque() for name in ENDPOINTS}
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="provider-server", daemon=True)
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    # -- scripting and inspection -------------------------------------------------------
    def script(self, endpoint: str, *behaviours: Behaviour) -> None:
        """Answer the next calls to ``endpoint`` with ``behaviours``, then succeed again."""
        assert endpoint in ENDPOINTS, endpoint
        with self._cond:
            self._scripts[endpoint].extend(behaviours)

    def received(self, endpoint: str) -> list[Recorded]:
        """The requests ``endpoint`` received so far."""
        with self._cond:
            return [r for r in self.requests if r.endpoint == endpoint]

    def count(self, endpoint: str) -> int:
        """How many requests ``endpoint`` received."""
        return len(self.received(endpoint))

    def wait_for(self, endpoint: str, n: int, timeout: float = 30.0) -> list[Recorded]:
        """Block until ``endpoint`` has received at least ``n`` requests."""
        with self._cond:
            if not self._cond.wait_for(lambda: sum(r.endpoint == endpoint for r in self.requests) >= n, timeout):
                got = sum(r.endpoint == endpoint for r in self.requests)
                raise TimeoutError(f"{endpoint}: {got} requests, expected {n}")
            return [r for r in self.requests if r.endpoint == endpoint]

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> ProviderServer:
        """Start serving on loopback."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Stop serving, release hung handlers and join the thread."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._messages)
        app.router.add_post("/2010-04-01/Accounts/{sid}/Calls.json", self._calls)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    async def _stop(self) -> None:
        assert self._stopping is not None
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- handlers -------------------------------------------------------------------------
    def _next(self, endpoint: str, recorded: Recorded) -> Behaviour:
        with self._cond:
            self.requests.append(recorded)
            behaviour = self._scripts[endpoint].popleft() if self._scripts[endpoint] else ok()
            self._cond.notify_all()
        return behaviour

    async def _hold(self, behaviour: Behaviour) -> None:
        if behaviour.kind == "hang":
            assert self._stopping is not None
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), behaviour.seconds)

    async def _twilio(self, request: web.Request, endpoint: str, prefix: str) -> web.StreamResponse:
        form = {k: v[-1] for k, v in parse_qs(await request.text()).items()}
        recorded = Recorded(endpoint, request.method, request.path, dict(request.headers), form=form)
        behaviour = self._next(endpoint, recorded)
        await self._hold(behaviour)
        sid = request.match_info["sid"]
        if recorded.basic_auth is None or recorded.basic_auth[0] != sid:
            return web.json_response(
                {"code": 20003, "message": "Authenticate", "more_info": "", "status": 401}, status=401
            )
        if behaviour.kind == "error":
            body = {
                "code": behaviour.code,
                "message": behaviour.message,
                "more_info": f"https://www.twilio.com/docs/errors/{behaviour.code}",
                "status": behaviour.status,
            }
            return web.json_response(body, status=behaviour.status)
        if behaviour.kind == "invalid_json":
            return web.Response(status=201, text="<html>not json", content_type="text/html")
        resource_sid = prefix + uuid.uuid4().hex
        body = {
            "sid": resource_sid,
            "account_sid": sid,
            "to": form.get("To"),
            "from": form.get("From"),
            "status": "queued",
            "uri": f"/2010-04-01/Accounts/{sid}/{endpoint.title()}/{resource_sid}.json",
        }
        if endpoint == "messages":
            body["body"] = form.get("Body")
        return web.json_response(body, status=201)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._twilio(request, "messages", "SM")

    async def _calls(self, request: web.Request) -> web.StreamResponse:
        return await self._twilio(request, "calls", "CA")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        recorded = Recorded("chat", request.method, request.path, dict(request.headers), json=payload)
        behaviour = self._next("chat", recorded)
        await self._hold(behaviour)
        if behaviour.kind == "error":
            error = {"message": behaviour.message, "type": "server_error", "param": None, "code": None}
            return web.json_response({"error": error}, status=behaviour.status)
        content = behaviour.content
        if behaviour.kind == "invalid_json":
            content = '{"subject": "unterminated'
        if content is None:
            content = self.completion_writer(payload)
        body = {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": payload.get("model", "gpt-4o-mini"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": behaviour.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160},
        }
        return web.json_response(body)


@contextmanager
def provider_server(**kwargs: Any) -> Iterator[ProviderServer]:
    """Run a :class:`ProviderServer` for the duration of the block."""
    server = ProviderServer(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
