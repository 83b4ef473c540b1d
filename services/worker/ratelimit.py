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
        self._script = redis.register_script(_TAKE)

    def take(self, limits: Sequence[Limit], now: datetime) -> Verdict:
        """Take a slot under every limit, or under none and say when to try again."""
        if not limits:
            return Verdict(True)
        keys, args = [], []
        ends = []
        for limit in limits:
            key, end = limit.bucket(now)
            keys.append(key)
            ends.append(end)
            args += [limit.limit, limit.seconds + 60]
        refused = int(self._script(keys=keys, args=args))
        if refused == 0:
            return Verdict(True)
        return Verdict(False, limits[refused - 1], ends[refused - 1] + timedelta(seconds=1))


HOUR = 3600
DAY = 86400
MINUTE = 60
