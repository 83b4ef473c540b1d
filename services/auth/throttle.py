"""Failed-login throttling in Redis: per account and, separately, per client address.

From ``soft`` failures within the window on, each further failure locks the subject for
``2**(n - soft)`` seconds (slow down); at ``hard`` failures it is locked out for
``lockout * 2**(k - 1)`` seconds, ``k`` counting its lockouts of the last day, capped at
``lockout_max``. A lock holds the moment it ends, so the answer is the same whether or not
the account exists, and attempts made while locked are refused without being counted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio.to_thread
import structlog
from redis import Redis

from libs.errors import TooManyRequests

log = structlog.get_logger(__name__)

_PREFIX = "auth:login"
_STRIKES_TTL = 86400

# KEYS: failures, strikes, lock. ARGV: now, window, soft, hard, lockout, lockout_max.
_RECORD_FAILURE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
local now = tonumber(ARGV[1])
local soft, hard = tonumber(ARGV[3]), tonumber(ARGV[4])
local base, cap = tonumber(ARGV[5]), tonumber(ARGV[6])
local duration, lockout = 0, 0
if n >= hard then
  local k = redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], 86400)
  duration = math.min(base * 2 ^ (k - 1), cap)
  lockout = 1
  redis.call('DEL', KEYS[1])
elseif n >= soft then
  duration = math.min(2 ^ (n - soft), base)
end
if duration > 0 then
  local current = tonumber(redis.call('GET', KEYS[3]) or '0')
  local ends = now + duration
  if ends > current then
    redis.call('SET', KEYS[3], tostring(ends), 'EX', math.ceil(duration) + 1)
  end
end
return {n, tostring(duration), lockout}
"""


@dataclass(frozen=True, slots=True)
class Policy:
    """When a subject slows down and when it is locked out."""

    soft: int
    hard: int
    lockout: int
    lockout_max: int
    window: int


def account_subject(email_normalized: str) -> str:
    """Return the throttle subject of an account (a hash: no address is kept in Redis)."""
    return "acct:" + hashlib.sha256(email_normalized.encode()).hexdigest()[:32]


def address_subject(address: str) -> str:
    """Return the throttle subject of a client address."""
    return "addr:" + address


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: list[str]) -> str:
    """Return the client's address: the peer, or the last hop a trusted proxy (the gateway) added."""
    address = peer or "unknown"
    if forwarded_for and address in trusted_proxies:
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        if hops:
            try:
                return str(ipaddress.ip_address(hops[-1]))
            except ValueError:
                return address
    return address


class LoginThrottle:
    """Refuse attempts from locked subjects and count failures; state lives in Redis."""

    def __init__(self, redis: Redis, *, account: Policy, address: Policy) -> None:
        self.redis = redis
        self.policies = {"acct": account, "addr": address}
        self._script: Any = redis.register_script(_RECORD_FAILURE)

    @staticmethod
    def _keys(subject: str) -> tuple[str, str, str]:
        return f"{_PREFIX}:fail:{subject}", f"{_PREFIX}:strikes:{subject}", f"{_PREFIX}:lock:{subject}"

    async def check(self, *subjects: str) -> None:
        """Raise :class:`TooManyRequests` with ``Retry-After`` while any subject is locked."""
        raw = await anyio.to_thread.run_sync(self.redis.mget, [self._keys(s)[2] for s in subjects])
        now = time.time()
        remaining = max((float(v) - now for v in raw if v is not None), default=0.0)
        if remaining > 0:
            raise TooManyRequests(
                "Too many failed attempts; try again later.", retry_after=max(1, math.ceil(remaining))
            )

    async def record_failure(self, *subjects: str) -> None:
        """Count one failed attempt against every subject, locking those over their limits."""
        now = time.time()
        for subject in subjects:
            policy = self.policies[subject.split(":", 1)[0]]
            args = [now, policy.window, policy.soft, policy.hard, policy.lockout, policy.lockout_max]
            keys = list(self._keys(subject))
            count, duration, lockout = await anyio.to_thread.run_sync(partial(self._script, keys=keys, args=args))
            if int(lockout):
                log.warning("login_locked_out", subject=subject, failures=int(count), seconds=float(duration))

    async def record_success(self, subject: str) -> None:
        """Forget an account's recent failures after a successful sign-in."""
        await anyio.to_thread.run_sync(self.redis.delete, self._keys(subject)[0])
