"""Password hashing with argon2id, off the event loop and capped in concurrency."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from libs.errors import TooManyRequests

T = TypeVar("T")


class Passwords:
    """Hash and verify passwords; at most ``concurrency`` hashes run at once, ``queue_limit`` wait."""

    def __init__(
        self, *, time_cost: int, memory_kib: int, parallelism: int, concurrency: int = 2, queue_limit: int = 32
    ) -> None:
        self.hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID)
        self.concurrency = concurrency
        self.queue_limit = queue_limit
        self._limiter: anyio.CapacityLimiter | None = None
        self._dummy_hash: str | None = None
        self._in_flight = 0

    @property
    def parameters(self) -> dict[str, int]:
        """The argon2id parameters new hashes use."""
        p = self.hasher
        return {"time_cost": p.time_cost, "memory_kib": p.memory_cost, "parallelism": p.parallelism}

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.concurrency)
        if self._in_flight >= self.concurrency + self.queue_limit:
            # Each hash holds tens of MiB: refuse rather than queue without bound.
            raise TooManyRequests("Too many sign-ins at once; try again shortly.", retry_after=1)
        self._in_flight += 1
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        finally:
            self._in_flight -= 1

    async def hash(self, password: str) -> str:
        """Return the argon2id PHC string of ``password``."""
        return await self._run(self.hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``password_hash`` (a malformed hash never matches)."""

        def check(stored: str, given: str) -> bool:
            try:
                return self.hasher.verify(stored, given)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await self._run(check, password_hash, password)

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of one verification, so an unknown account answers as slowly as a known one."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether ``password_hash`` was made with other parameters than today's."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True
