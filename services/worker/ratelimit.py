"""Sending caps as Redis rate limits: per-sender hourly and daily (and per recipient provider), per-recipient-domain
pacing, and a sender's random gap between two sends.

Fixed windows aligned to the UTC clock, checked and taken atomically for every limit at once
(a Lua script), so a message either takes a slot under every limit or under none.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dns.exception
import dns.resolver
from redis import Redis

from libs.deliverability.dns_preflight import DnsConfig, make_resolver

_TAKE = """
-- KEYS: window counters, then (ARGV[1] = '1') a sender's next allowed instant in ms.
-- ARGV: gap flag, now in ms, the gap drawn in ms, then (limit, ttl) per counter.
-- Returns {} when a slot was taken under every limit, else {index, ms} for each one that says no
-- (ms: when a gap ends; a counter's window end is known to the caller).
local gap = ARGV[1] == '1'
local n = #KEYS - (gap and 1 or 0)
local now = tonumber(ARGV[2])
local refused = {}
for i = 1, n do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used >= tonumber(ARGV[2 + i * 2]) then table.insert(refused, {i, 0}) end
end
if gap then
  local after = tonumber(redis.call('GET', KEYS[n + 1]) or '0')
  if now < after then table.insert(refused, {n + 1, after}) end
end
if #refused > 0 then return refused end
for i = 1, n do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[3 + i * 2])
end
if gap then
  local wait = tonumber(ARGV[3])
  redis.call('SET', KEYS[n + 1], now + wait, 'PX', wait + 60000)
end
return refused
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
class Gap:
    """A random pause of ``min_seconds`` to ``max_seconds`` after each send for ``name`` (``sender:<id>:gap``)."""

    name: str
    min_seconds: int
    max_seconds: int

    @property
    def key(self) -> str:
        """The Redis key holding the instant (ms since the epoch) the next send may go."""
        return f"tw:rl:{self.name}"

    def draw(self) -> int:
        """The next pause in ms, uniform within the bounds (a fixed interval would look like a machine)."""
        return _random.randint(self.min_seconds * 1000, self.max_seconds * 1000)


_random = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a slot was taken; when not, the limit free the latest (the earliest instant all allow) and when."""

    allowed: bool
    limit: Limit | Gap | None = None
    retry_at: datetime | None = None


class RateLimiter:
    """Take one slot under several limits (and a sender's gap) at once."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_TAKE)

    def take_many(
        self, batches: Sequence[Sequence[Limit]], now: datetime, gaps: Sequence[Gap | None] | None = None
    ) -> list[Verdict]:
        """Take one slot per entry of ``batches`` (under all its limits and its gap), in order, in one round trip.

        Entries are taken in order, so a second message of one sender in a batch meets the gap the
        first one drew. A refused entry is told the earliest instant every one of its limits allows.
        """
        gaps = gaps or [None] * len(batches)
        calls = [self._call(limits, gap, now) for limits, gap in zip(batches, gaps, strict=True)]
        pending = [(keys, args) for keys, args, _ in calls if keys]
        answers: list[list[list[int]]] = []
        if pending:
            with self._redis.pipeline(transaction=False) as pipe:
                for keys, args in pending:
                    self._script(keys=keys, args=args, client=pipe)
                answers = list(pipe.execute())
        verdicts: list[Verdict] = []
        it = iter(answers)
        for limits, gap, (keys, _, ends) in zip(batches, gaps, calls, strict=True):
            refused = next(it) if keys else []
            if not refused:
                verdicts.append(Verdict(True))
                continue
            every: list[tuple[datetime, Limit | Gap]] = []
            for index, ms in refused:
                if index <= len(limits):
                    every.append((ends[index - 1] + timedelta(seconds=1), limits[index - 1]))
                else:
                    assert gap is not None
                    every.append((datetime.fromtimestamp(int(ms) / 1000, UTC), gap))
            at, limit = max(every, key=lambda pair: pair[0])
            verdicts.append(Verdict(False, limit, at))
        return verdicts

    @staticmethod
    def _call(limits: Sequence[Limit], gap: Gap | None, now: datetime) -> tuple[list[str], list[int], list[datetime]]:
        keys: list[str] = []
        args: list[int] = [1 if gap else 0, int(now.timestamp() * 1000), gap.draw() if gap else 0]
        ends: list[datetime] = []
        for limit in limits:
            key, end = limit.bucket(now)
            keys.append(key)
            ends.append(end)
            args += [limit.limit, limit.seconds + 60]
        if gap:
            keys.append(gap.key)
        return keys, args, ends

    def take(self, limits: Sequence[Limit], now: datetime, gap: Gap | None = None) -> Verdict:
        """Take a slot under every limit, or under none and say when to try again."""
        return self.take_many([limits], now, [gap])[0]

    def used(self, limits: Sequence[Limit], now: datetime) -> list[int]:
        """How many slots of each limit's current window are taken (one round trip)."""
        if not limits:
            return []
        values = self._redis.mget([limit.bucket(now)[0] for limit in limits])
        return [int(v or 0) for v in values]


HOUR = 3600
DAY = 86400
MINUTE = 60


PROVIDER_MX: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("google", ("google.com", "googlemail.com")),
    ("microsoft", ("outlook.com", "hotmail.com", "microsoft.com")),
    ("yahoo", ("yahoodns.net", "yahoo.com")),
)
"""Recipient providers by the domains their mail exchangers sit under; any other is ``other``."""
MX_CACHE_SECONDS = 7 * DAY
MX_FAILED_SECONDS = HOUR
"""A domain whose MX could not be read counts as ``other`` for this long, then is asked again."""


def classify(hosts: Sequence[str]) -> str:
    """The recipient provider whose mail exchangers ``hosts`` are (``other`` when none is known)."""
    for host in hosts:
        name = host.rstrip(".").lower()
        for provider, suffixes in PROVIDER_MX:
            if any(name == s or name.endswith("." + s) for s in suffixes):
                return provider
    return "other"


def recipient_provider(redis: Redis, domain: str, config: DnsConfig) -> str:
    """The provider receiving mail for ``domain``, from its MX records: asked once, then read from Redis."""
    key = f"tw:mx:{domain.lower()}"
    cached = redis.get(key)
    if cached is not None:
        return cached.decode() if isinstance(cached, bytes) else str(cached)
    try:
        answer = make_resolver(config).resolve(domain, "MX")
        provider, ttl = classify([r.exchange.to_text() for r in answer]), MX_CACHE_SECONDS
    except dns.exception.DNSException:
        provider, ttl = "other", MX_FAILED_SECONDS
    redis.set(key, provider, ex=ttl)
    return provider
