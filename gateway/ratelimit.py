"""Request budgets at the edge: per organization, per API key and per client address, shared in Redis.

Every budget is a GCRA (generic cell rate algorithm) over Redis time: ``limit`` requests per
``window`` seconds, at most ``limit`` at once, refilled one every ``window / limit`` seconds.
One Lua script checks every budget a request falls under and takes from all of them or from
none, in one round trip, so every gateway replica on the same Redis shares each counter. A
key holds one number (the theoretical arrival time) and expires when its budget is full again.

Which budgets a request takes from (the identity comes from the verified token only):

- a token: its organization's read (GET/HEAD/OPTIONS) or write budget, and, when the token
  was exchanged for an API key (``akid``), that key's own read or write budget;
- the paths that cost money or mail (launch, imports, test sends, sender verification): the
  organization's and the key's costly budgets as well;
- no token (public routes under ``/api/``): the client address's read or write budget, except
  the prefixes with a throttle of their own (login).

When Redis cannot answer, the gateway fails open by default (the request goes on without
``RateLimit`` headers and a warning is logged once per outage) or, with ``fail_open`` off,
answers 503. Either way Redis is left alone for a second before it is asked again.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.errors import TooManyRequests, Unavailable
from libs.security import Principal

if TYPE_CHECKING:
    from gateway.settings import GatewaySettings

Headers = list[tuple[bytes, bytes]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

log = structlog.get_logger("gateway.ratelimit")

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

COSTLY_PATHS: tuple[str, ...] = (
    r"POST /api/campaigns/[^/]+/launch",
    r"POST /api/leads/imports",
    r"POST /api/brands/[^/]+/senders/[^/]+/verify",
    r"POST /api/.+/(test|test-send|send-test)",
)
"""``METHOD path-regex`` of the requests that cost money or mail (matched against the whole path)."""

EXEMPT_PREFIXES: tuple[str, ...] = ("/api/auth/login",)
"""Public prefixes with their own throttle (per account and address), left out of the address budget."""

BACKOFF_SECONDS = 1.0
"""After Redis failed, how long the limiter answers without asking it."""

_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local tats, news = {}, {}
local denied, wait = 0, -1
for i = 1, n do
  local limit = tonumber(ARGV[i * 2 - 1])
  local window = tonumber(ARGV[i * 2])
  local interval = window / limit
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tats[i] = tat
  news[i] = tat + interval
  local late = news[i] - window - now
  if late > 0 and late > wait then denied, wait = i, late end
end
local out = {denied, math.ceil(math.max(wait, 0))}
for i = 1, n do
  local limit = tonumber(ARGV[i * 2 - 1])
  local window = tonumber(ARGV[i * 2])
  local interval = window / limit
  local tat = tats[i]
  if denied == 0 then
    tat = news[i]
    redis.call('SET', KEYS[i], tostring(tat), 'PX', math.ceil(tat - now))
  end
  local remaining = math.floor((now - (tat - window)) / interval)
  if remaining < 0 then remaining = 0 end
  if remaining > limit then remaining = limit end
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil(tat - now)
end
return out
"""
"""Take one request from every budget in KEYS (ARGV: limit, window in ms per key) or from none.

Answers ``{denied, retry_ms, remaining_1, reset_ms_1, ...}``: ``denied`` is the 1-based index of
the budget that refused (the one that frees up last), 0 when the request was taken.
"""


@dataclass(frozen=True, slots=True)
class Budget:
    """``limit`` requests per ``window`` seconds for one kind of caller and request."""

    name: str
    limit: int
    window: float


@dataclass(frozen=True, slots=True)
class Usage:
    """Where one budget stands after a request."""

    budget: Budget
    remaining: int
    reset: int
    """Seconds until the budget is full again."""


@dataclass(frozen=True, slots=True)
class Policy:
    """Every budget of the gateway, by caller and request kind."""

    org_read: Budget
    org_write: Budget
    org_costly: Budget
    key_read: Budget
    key_write: Budget
    key_costly: Budget
    address_read: Budget
    address_write: Budget

    @classmethod
    def per_window(
        cls,
        window: float,
        *,
        org_read: int,
        org_write: int,
        org_costly: int,
        key_read: int,
        key_write: int,
        key_costly: int,
        address_read: int,
        address_write: int,
    ) -> Policy:
        """Budgets that all share one window."""
        return cls(
            org_read=Budget("org-read", org_read, window),
            org_write=Budget("org-write", org_write, window),
            org_costly=Budget("org-costly", org_costly, window),
            key_read=Budget("key-read", key_read, window),
            key_write=Budget("key-write", key_write, window),
            key_costly=Budget("key-costly", key_costly, window),
            address_read=Budget("address-read", address_read, window),
            address_write=Budget("address-write", address_write, window),
        )


def _seconds(ms: int) -> int:
    return max(0, math.ceil(ms / 1000))


def headers_for(usages: Sequence[Usage]) -> Headers:
    """``RateLimit-*`` headers: the tightest budget as Limit/Remaining/Reset, every budget as Policy + RateLimit.

    ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` (seconds) describe the
    budget with the fewest requests left; ``RateLimit-Policy`` and ``RateLimit`` (the IETF
    httpapi draft's structured fields) list each budget the request took from.
    """
    tightest = min(usages, key=lambda u: (u.remaining, -u.reset))
    policy = ", ".join(f'"{u.budget.name}";q={u.budget.limit};w={math.ceil(u.budget.window)}' for u in usages)
    state = ", ".join(f'"{u.budget.name}";r={u.remaining};t={u.reset}' for u in usages)
    return [
        (b"ratelimit-limit", str(tightest.budget.limit).encode()),
        (b"ratelimit-remaining", str(tightest.remaining).encode()),
        (b"ratelimit-reset", str(tightest.reset).encode()),
        (b"ratelimit-policy", policy.encode()),
        (b"ratelimit", state.encode()),
    ]


def with_headers(send: Send, extra: Headers) -> Send:
    """Wrap ``send`` so the response head carries ``extra``."""

    async def send_with_headers(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return send_with_headers


class RateLimiter:
    """Take each request from the budgets of its organization, API key or client address."""

    def __init__(
        self,
        redis_url: str,
        policy: Policy,
        *,
        costly_paths: Iterable[str] = COSTLY_PATHS,
        exempt_prefixes: Iterable[str] = EXEMPT_PREFIXES,
        fail_open: bool = True,
        timeout: float = 0.5,
        key_prefix: str = "tw:rl:gw:",
    ) -> None:
        self.redis_url = redis_url
        self.policy = policy
        self.fail_open = fail_open
        self.timeout = timeout
        self.key_prefix = key_prefix
        self.exempt_prefixes = tuple(exempt_prefixes)
        self._costly = [self._compile(rule) for rule in costly_paths]
        self._redis: Redis | None = None
        self._script: Any = None
        self._down_until = 0.0
        self.failures = 0
        """How many checks Redis could not answer (for tests and metrics)."""

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> RateLimiter | None:
        """The limiter ``settings`` describe, or None when rate limiting is off."""
        if not settings.rate_limit_on:
            return None
        policy = Policy.per_window(
            settings.rate_limit_window,
            org_read=settings.rate_limit_org_read,
            org_write=settings.rate_limit_org_write,
            org_costly=settings.rate_limit_org_costly,
            key_read=settings.rate_limit_key_read,
            key_write=settings.rate_limit_key_write,
            key_costly=settings.rate_limit_key_costly,
            address_read=settings.rate_limit_address_read,
            address_write=settings.rate_limit_address_write,
        )
        return cls(
            settings.rate_limit_redis_url or settings.redis_url,
            policy,
            costly_paths=settings.rate_limit_costly_paths,
            exempt_prefixes=settings.rate_limit_exempt_prefixes,
            fail_open=settings.rate_limit_fail_open,
            timeout=settings.rate_limit_timeout,
        )

    @staticmethod
    def _compile(rule: str) -> tuple[str, re.Pattern[str]]:
        method, _, pattern = rule.strip().partition(" ")
        if not method or not pattern:
            raise ValueError(f"costly path rule {rule!r} must be 'METHOD path-regex'")
        return method.upper(), re.compile(pattern.strip())

    def is_costly(self, method: str, path: str) -> bool:
        """Whether ``method path`` costs money or mail (launch, import, test send, sender verification)."""
        return any(m == method and p.fullmatch(path) for m, p in self._costly)

    def budgets(
        self, method: str, path: str, principal: Principal | None, address: str | None
    ) -> list[tuple[str, Budget]]:
        """The Redis keys and budgets one request takes from (none: not limited)."""
        p, prefix = self.policy, self.key_prefix
        write = method not in READ_METHODS
        if principal is None:
            if not path.startswith("/api/") or any(path.startswith(e) for e in self.exempt_prefixes):
                return []
            budget = p.address_write if write else p.address_read
            return [(f"{prefix}addr:{address or 'unknown'}:{budget.name}", budget)]
        org = f"{prefix}org:{principal.org_id}:"
        key = f"{prefix}key:{principal.api_key_id}:" if principal.api_key_id is not None else None
        chosen = [(org, p.org_write if write else p.org_read)]
        if key is not None:
            chosen.append((key, p.key_write if write else p.key_read))
        if write and self.is_costly(method, path):
            chosen.append((org, p.org_costly))
            if key is not None:
                chosen.append((key, p.key_costly))
        return [(base + budget.name, budget) for base, budget in chosen]

    async def check(self, method: str, path: str, principal: Principal | None, address: str | None) -> Headers | None:
        """Take this request from its budgets; return the headers to answer with, or raise 429 (503)."""
        chosen = self.budgets(method, path, principal, address)
        if not chosen:
            return None
        if time.monotonic() < self._down_until:
            return self._unavailable()
        keys = [key for key, _ in chosen]
        args: list[int] = []
        for _, budget in chosen:
            args += [budget.limit, math.ceil(budget.window * 1000)]
        try:
            answer = await self._take(keys, args)
        except (RedisError, OSError) as exc:
            self.failures += 1
            if self._down_until == 0.0:
                log.warning("rate_limit_unavailable", error=type(exc).__name__, fail_open=self.fail_open)
            self._down_until = time.monotonic() + BACKOFF_SECONDS
            return self._unavailable()
        if self._down_until:
            log.info("rate_limit_available")
            self._down_until = 0.0
        denied, retry_ms = int(answer[0]), int(answer[1])
        usages = [
            Usage(budget, int(answer[2 + i * 2]), _seconds(int(answer[3 + i * 2])))
            for i, (_, budget) in enumerate(chosen)
        ]
        if denied:
            refused = usages[denied - 1]
            retry_after = max(1, _seconds(retry_ms))
            limited = [Usage(refused.budget, 0, refused.reset), *(u for u in usages if u is not refused)]
            headers = {k.decode(): v.decode() for k, v in headers_for(limited)}
            raise TooManyRequests(
                f"The {refused.budget.name} budget ({refused.budget.limit} requests per "
                f"{refused.budget.window:g} s) is used up; retry in {retry_after} s.",
                retry_after=retry_after,
                headers={"Retry-After": str(retry_after), **headers},
                policy=refused.budget.name,
                retry_after_seconds=retry_after,
            )
        return headers_for(usages)

    def _unavailable(self) -> Headers | None:
        if self.fail_open:
            return None
        raise Unavailable("Rate limits cannot be checked right now.", headers={"Retry-After": "1"})

    async def _take(self, keys: list[str], args: list[int]) -> list[Any]:
        if self._redis is None:
            self._redis = Redis.from_url(
                self.redis_url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
            self._script = self._redis.register_script(_GCRA)
        answer: list[Any] = await self._script(keys=keys, args=args)
        return answer

    async def aclose(self) -> None:
        """Close the Redis connections (they are opened again on the next request)."""
        redis, self._redis, self._script = self._redis, None, None
        if redis is not None:
            await redis.aclose()
