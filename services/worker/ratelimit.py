"""Sending caps as Redis rate limits: per-sender hourly and daily, per-recipient-domain pacing.

Fixed windows aligned to the UTC clock, checked and taken atomically for every limit at once
(a Lua script), so a message either takes a slot under every limit or under none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis import Redis

_TAKE = """
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', key) or '0')
  if used >= tonumber(ARGV[i * 2 - 1]) then return i end
end
for i, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[i * 2])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``limit`` sends per ``seconds`` window for ``name`` (e.g. ``sender:<id>:hour``)."""

    name: str
    limit: int
    seconds: int

    def bucket(self, now: datetime) -> tuple[str, datetime]:
        """The Redis key of the window ``now`` falls in, and when that window ends."""
        epoch = int(now.timestamp())
        start = epoch - epoch % self.seconds
        return f"tw:rl:{self.name}:{start}", datetime.fromtimestamp(start + self.seconds, UTC)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a slot was taken; when not, which limit said no and when it frees up."""

    allowed: bool
    limit: Limit | None = None
    retry_at: datetime | None = None


class RateLimiter:
    """Take one slot under several limits at once."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_TAKE)

    def take_many(self, batches: Sequence[Sequence[Limit]], now: datetime) -> list[Verdict]:
        """Take one slot per entry of ``batches`` (each under all of its limits), in order, in one round trip."""
        calls = [self._call(limits, now) for limits in batches]
        pending = [(keys, args) for keys, args, _ in calls if keys]
        answers: list[int] = []
        if pending:
            with self._redis.pipeline(transaction=False) as pipe:
                for keys, args in pending:
                    self._script(keys=keys, args=args, client=pipe)
                answers = [int(a) for a in pipe.execute()]
        verdicts: list[Verdict] = []
        it = iter(answers)
        for limits, (keys, _, ends) in zip(batches, calls, strict=True):
            refused = next(it) if keys else 0
            verdicts.append(
                Verdict(True)
                if refused == 0
                else Verdict(False, limits[refused - 1], ends[refused - 1] + timedelta(seconds=1))
            )
        return verdicts

    @staticmethod
    def _call(limits: Sequence[Limit], now: datetime) -> tuple[list[str], list[int], list[datetime]]:
        keys: list[str] = []
        args: list[int] = []
        ends: list[datetime] = []
        for limit in limits:
            key, end = limit.bucket(now)
            keys.append(key)
            ends.append(end)
            args += [limit.limit, limit.seconds + 60]
        return keys, args, ends

    def take(self, limits: Sequence[Limit], now: datetime) -> Verdict:
        """Take a slot under every limit, or under none and say when to try again."""
        return self.take_many([limits], now)[0]


HOUR = 3600
DAY = 86400
MINUTE = 60
