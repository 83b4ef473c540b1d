"""Send forecast: when each step of a campaign should finish for the leads enrolled, and what limits it.

A simulation, not a formula. Leads travel in cohorts (same pending step, due minute, time
zone, phone prefix and large recipient domain), so a million leads cost what a few thousand
cohorts cost. Time moves from event to event (a cohort becoming due, a cap's window
reopening); at each instant the cohorts that are due are held by the send window and
calling hours exactly as the worker's gate holds them (:func:`libs.compliance_hours.allowance`),
then served, oldest first, within the capacity of the channel's pool of senders: the worker's hourly
and daily caps as fixed UTC windows (``services/worker/ratelimit.py``) and the pacing of one
recipient domain per minute. A sent cohort's next step is due after its delay
(:func:`libs.schedule.after_delay`, the worker's own rule).

The capacity model is one :class:`SenderCapacity` per sender of the campaign's pool (the
senders its ``sender_pool`` names, else all the brand's, not paused; the verified ones when any
is) in a :class:`Capacity` per channel; when one sender is full the next one of the pool goes
on. Warm-up ramps (a cap that depends on the day), gaps between sends and caps per recipient
provider are not simulated yet: they plug in there without touching the walk.

Every wait a cohort goes through is charged, in lead-seconds, to its cause (``pacing``,
``send_window``, ``quiet_hours``, ``sender_hourly_cap``, ``sender_daily_cap``,
``domain_pacing``); the largest is the step's binding limit. The walk is bounded: at most
``horizon_days`` of simulated time and :data:`MAX_EVENTS` instants.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel, Field

from libs.compliance_hours import Recipient, allowance, lead_zone
from libs.compliance_hours import Verdict as HoursVerdict
from libs.db.models.campaign import Campaign, CampaignStep
from libs.schedule import Delay, ScheduleError, SendWindow, after_delay, format_clock, zone
from services.campaign.campaigns.repository import TenantRepository
from services.campaign.settings import CampaignSettings

HOUR = 3600
DAY = 86400
MINUTE = 60
MAX_EVENTS = 200_000
"""Instants one forecast may visit (each costs one pass over the cohorts due then)."""
HORIZON_DAYS = 366
PHONE_CHANNELS = frozenset({"sms", "voicemail"})
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# --- capacity ------------------------------------------------------------------------------------


def _window_start(t: datetime, seconds: int) -> int:
    epoch = int(t.timestamp())
    return epoch - epoch % seconds


def _reopens(t: datetime, seconds: int) -> datetime:
    """When the fixed UTC window of ``t`` ends, plus the second the worker's hold adds."""
    return datetime.fromtimestamp(_window_start(t, seconds) + seconds + 1, UTC)


@dataclass
class SenderCapacity:
    """One sender's caps as the worker takes them: fixed UTC hour and day windows."""

    channel: str
    sender_id: uuid.UUID | None
    hourly: int
    daily: int
    _hours: dict[int, int] = field(default_factory=dict)
    _days: dict[int, int] = field(default_factory=dict)

    def room(self, t: datetime) -> tuple[int, str | None, datetime | None]:
        """Sends left at ``t``; when none, the exhausted limit and when it reopens."""
        day_left = self.daily - self._days.get(_window_start(t, DAY), 0)
        hour_left = self.hourly - self._hours.get(_window_start(t, HOUR), 0)
        if day_left <= 0:
            return 0, "sender_daily_cap", _reopens(t, DAY)
        if hour_left <= 0:
            return 0, "sender_hourly_cap", _reopens(t, HOUR)
        return min(day_left, hour_left), None, None

    def used(self, t: datetime, hour: int, day: int) -> None:
        """Count what was already sent in the hour and the day of ``t`` (other campaigns of the brand included)."""
        self._hours[_window_start(t, HOUR)] = hour
        self._days[_window_start(t, DAY)] = day

    def take(self, t: datetime, n: int) -> None:
        """Use ``n`` sends at ``t``."""
        hour, day = _window_start(t, HOUR), _window_start(t, DAY)
        self._hours[hour] = self._hours.get(hour, 0) + n
        self._days[day] = self._days.get(day, 0) + n


@dataclass
class DomainPacing:
    """Emails per minute to one recipient domain (one organization's), in fixed UTC minutes."""

    per_minute: int
    _used: dict[tuple[str, int], int] = field(default_factory=dict)

    def room(self, domain: str | None, t: datetime) -> tuple[int, datetime | None]:
        """Sends left to ``domain`` at ``t`` (no domain: unbounded) and, when none, when it reopens."""
        if domain is None:
            return 1 << 62, None
        left = self.per_minute - self._used.get((domain, _window_start(t, MINUTE)), 0)
        return (left, None) if left > 0 else (0, _reopens(t, MINUTE))

    def take(self, domain: str | None, t: datetime, n: int) -> None:
        """Use ``n`` sends to ``domain`` at ``t``."""
        if domain is not None:
            key = (domain, _window_start(t, MINUTE))
            self._used[key] = self._used.get(key, 0) + n


@dataclass
class Capacity:
    """What a campaign may send: the senders of each channel and the per-domain pacing."""

    senders: dict[str, list[SenderCapacity]]
    domains: DomainPacing

    def fresh(self, relax: frozenset[str] = frozenset()) -> Capacity:
        """The same limits with nothing used yet; the ``relax``-ed ones (see :func:`walk`) lifted."""
        unbounded = 1 << 62
        pools = {
            channel: [
                SenderCapacity(
                    s.channel,
                    s.sender_id,
                    unbounded if "sender_hourly_cap" in relax else s.hourly,
                    unbounded if "sender_daily_cap" in relax else s.daily,
                    dict(s._hours),
                    dict(s._days),
                )
                for s in pool
            ]
            for channel, pool in self.senders.items()
        }
        per_minute = unbounded if "domain_pacing" in relax else self.domains.per_minute
        return Capacity(pools, DomainPacing(per_minute))

    def room(self, channel: str, t: datetime) -> tuple[SenderCapacity | None, int, str | None, datetime | None]:
        """The sender of ``channel`` with room at ``t`` and how much; else the limit holding and when it reopens."""
        pool = self.senders.get(channel) or []
        reasons: list[tuple[datetime, str]] = []
        for sender in pool:
            n, reason, reopens = sender.room(t)
            if n > 0:
                return sender, n, None, None
            assert reason is not None
            assert reopens is not None
            reasons.append((reopens, reason))
        if not reasons:
            return None, 0, "no_sender", None
        reopens, reason = min(reasons)
        return None, 0, reason, reopens

    def describe(self, channel: str, limit: str) -> str:
        """What ``limit`` allows on ``channel``, in words."""
        pool = self.senders.get(channel) or []
        label = "voicemail" if channel == "voicemail" else channel
        count = f"{len(pool)} {label} sender{'s' if len(pool) != 1 else ''} allow{'' if len(pool) != 1 else 's'}"
        if limit == "sender_daily_cap":
            return f"{count} {sum(s.daily for s in pool):,} a day"
        if limit == "sender_hourly_cap":
            return f"{count} {sum(s.hourly for s in pool):,} an hour"
        return f"sends to one recipient domain are paced at {self.domains.per_minute:,} a minute"


SenderRow = tuple[uuid.UUID, int | None, int | None]
"""A sender's id and its own hourly and daily limits."""


def _one(given: SenderRow | Sequence[SenderRow]) -> bool:
    return isinstance(given[0], uuid.UUID)


def capacity_of(settings: CampaignSettings, senders: Mapping[str, SenderRow | Sequence[SenderRow]]) -> Capacity:
    """The capacity model from the worker's caps (``settings``) and each channel's pool of senders (or one sender)."""
    pools: dict[str, list[SenderCapacity]] = {}
    for channel, given in senders.items():
        email = channel == "email"
        rows = [cast(SenderRow, given)] if _one(given) else list(cast(Sequence[SenderRow], given))
        pools[channel] = [
            SenderCapacity(
                channel,
                sender_id,
                hourly or (settings.email_hourly_cap if email else settings.sms_hourly_cap),
                daily or (settings.email_daily_cap if email else settings.sms_daily_cap),
            )
            for sender_id, hourly, daily in rows
        ]
    return Capacity(pools, DomainPacing(settings.domain_pacing_per_minute))


# --- the walk ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepPlan:
    """What the walk needs of a step: its channel, delay and send window (its own, else the campaign's)."""

    position: int
    channel: str
    delay: Delay
    send_window: Mapping[str, Any] | None


@dataclass(slots=True)
class Cohort:
    """Leads that travel together: the step they wait for, since when, where they are, how many."""

    position: int
    ready: datetime
    count: int
    timezone: str | None = None
    phone: str | None = None
    domain: str | None = None
    charged: str | None = None
    """A wait already known at the start (``pacing``), charged from the start to ``ready``."""


@dataclass
class StepOutcome:
    """What the walk saw of one step."""

    position: int
    channel: str
    leads: int = 0
    sent: int = 0
    never: int = 0
    first: datetime | None = None
    last: datetime | None = None
    per_day: dict[date, int] = field(default_factory=dict)
    waits: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Lead-seconds waited, by cause: which limits held the step at all."""
    limit: str | None = None
    """The limit that, lifted, would bring the step's finish forward most (``None``: none by a minute)."""

    def binding(self) -> str | None:
        """The step's binding limit (``None``: only its delay)."""
        return self.limit

    def done_by(self) -> tuple[int, float]:
        """How far the step got: leads left unsent, and the last send (seconds since the epoch)."""
        return self.leads - self.never - self.sent, self.last.timestamp() if self.last else 0.0


@dataclass
class Simulation:
    """Every step's outcome and whether the walk stopped before every lead was done."""

    steps: list[StepOutcome]
    truncated: bool
    events: int


def simulate(
    cohorts: Iterable[Cohort],
    steps: Sequence[StepPlan],
    capacity: Capacity,
    *,
    start: datetime,
    campaign_timezone: str = "UTC",
    horizon_days: int = HORIZON_DAYS,
) -> Simulation:
    """Forecast every step, and name each one's binding limit.

    The binding limit is found by asking: the walk runs again with each limit that held a
    step at all lifted, one at a time; the limit whose lifting brings the step's finish
    forward most (by at least a minute) binds it.
    """
    cohorts = list(cohorts)
    run = functools.partial(
        walk, cohorts, steps, capacity, start=start, campaign_timezone=campaign_timezone, horizon_days=horizon_days
    )
    base = run()
    causes = sorted({cause for step in base.steps for cause, wait in step.waits.items() if wait > 0})
    lifted = {cause: run(relax=frozenset({cause})) for cause in causes}
    for index, step in enumerate(base.steps):
        left, last = step.done_by()
        best: tuple[int, float] = (0, float(MINUTE))
        for cause, other in lifted.items():
            other_left, other_last = other.steps[index].done_by()
            gain = (left - other_left, last - other_last)
            if gain >= best:
                step.limit, best = cause, gain
    return base


def walk(
    cohorts: Iterable[Cohort],
    steps: Sequence[StepPlan],
    capacity: Capacity,
    *,
    start: datetime,
    campaign_timezone: str = "UTC",
    horizon_days: int = HORIZON_DAYS,
    relax: frozenset[str] = frozenset(),
) -> Simulation:
    """One walk from ``start`` until every cohort has gone through the last step (or the horizon).

    ``relax`` lifts limits (``pacing``, ``send_window``, ``quiet_hours``, ``sender_hourly_cap``,
    ``sender_daily_cap``, ``domain_pacing``): the counterfactual runs that name the binding one.
    """
    capacity = capacity.fresh(relax)
    cohorts = [dataclasses.replace(c) for c in cohorts]
    if "pacing" in relax:
        for cohort in cohorts:
            if cohort.charged == "pacing":
                cohort.ready, cohort.charged = start, None
    steps = [dataclasses.replace(s, send_window=None) if "send_window" in relax else s for s in steps]
    by_position = {s.position: s for s in steps}
    outcomes = {s.position: StepOutcome(s.position, s.channel) for s in steps}
    local = _zone_or_utc(campaign_timezone)
    end = start + timedelta(days=horizon_days)
    seq = itertools.count()
    future: list[tuple[datetime, int, Cohort]] = []
    order = [s.position for s in steps]

    def reach(cohort: Cohort) -> None:  # the cohort's leads count in this step and every later one
        for position in order[order.index(cohort.position) :]:
            outcomes[position].leads += cohort.count

    for cohort in cohorts:
        if cohort.position not in by_position or cohort.count <= 0:
            continue
        reach(cohort)
        if cohort.ready < start:
            cohort.ready = start
        if cohort.charged:
            outcomes[cohort.position].waits[cohort.charged] += cohort.count * (cohort.ready - start).total_seconds()
        heapq.heappush(future, (cohort.ready, next(seq), cohort))

    due: dict[tuple[Any, ...], tuple[datetime, int, Cohort]] = {}
    """Cohorts inside their window waiting for capacity, one per (step, zone, phone, domain); served oldest first."""
    events = 0
    t = start
    while (future or due) and t <= end and events < MAX_EVENTS:
        events += 1
        while future and future[0][0] <= t:
            _, tie, arrived = heapq.heappop(future)
            key = (arrived.position, arrived.timezone, arrived.phone, arrived.domain)
            if key in due:  # the same leads' kind already waiting: they wait together, from the older one's time
                due[key][2].count += arrived.count
            else:
                due[key] = (arrived.ready, tie, arrived)
        allowed: dict[tuple[Any, ...], Any] = {}
        wakeups: list[datetime] = []
        blocked: list[tuple[Cohort, str]] = []
        for key, (_, _, cohort) in sorted(due.items(), key=lambda item: item[1][:2]):
            plan = by_position[cohort.position]
            outcome = outcomes[plan.position]
            where = (plan.position, cohort.timezone, cohort.phone)
            if where not in allowed:
                recipient = Recipient(cohort.timezone, cohort.phone, campaign_timezone)
                hours = "email" if "quiet_hours" in relax else plan.channel
                allowed[where] = allowance(t, hours, plan.send_window, recipient)
            answer = allowed[where]
            if answer.verdict in (HoursVerdict.NEVER, HoursVerdict.NO_OVERLAP) or answer.at is None:
                outcome.never += cohort.count
                del due[key]
                continue
            if answer.at > t:  # outside the window or calling hours: back to the future until it opens
                held = "send_window" if answer.reason == "send_window" else "quiet_hours"
                outcome.waits[held] += cohort.count * (answer.at - t).total_seconds()
                cohort.ready = answer.at
                heapq.heappush(future, (answer.at, next(seq), cohort))
                del due[key]
                continue
            sender, room, reason, reopens = capacity.room(plan.channel, t)
            if sender is None:
                if reason == "no_sender":
                    outcome.never += cohort.count
                    del due[key]
                    continue
                assert reason is not None
                assert reopens is not None
                blocked.append((cohort, reason))
                wakeups.append(reopens)
                continue
            paced = plan.channel == "email"
            n = min(cohort.count, room, capacity.domains.room(cohort.domain, t)[0] if paced else room)
            if n > 0:
                sender.take(t, n)
                if paced:
                    capacity.domains.take(cohort.domain, t, n)
                _record(outcome, t, n, local)
                _advance(cohort, n, t, steps, future, seq)
                cohort.count -= n
            if cohort.count == 0:
                del due[key]
                continue
            left, why, when = sender.room(t)
            if left == 0 and capacity.room(plan.channel, t)[0] is not None:
                wakeups.append(t)  # another sender of the pool has room: the rest goes on from it next
                continue
            if left > 0:  # the sender has room: the recipient domain's pacing holds the rest
                why, when = "domain_pacing", capacity.domains.room(cohort.domain, t)[1]
            assert why is not None
            assert when is not None
            blocked.append((cohort, why))
            wakeups.append(when)
        if future:
            wakeups.append(future[0][0])
        if not wakeups:
            break
        following = max(min(wakeups), t + timedelta(seconds=1))
        for cohort, reason in blocked:
            outcomes[cohort.position].waits[reason] += cohort.count * (following - t).total_seconds()
        t = following
    truncated = bool(future or due)
    return Simulation([outcomes[p] for p in order], truncated, events)


def _zone_or_utc(name: str) -> ZoneInfo:
    try:
        return zone(name)
    except ScheduleError:
        return zone("UTC")


def _record(outcome: StepOutcome, t: datetime, n: int, local: ZoneInfo) -> None:
    outcome.sent += n
    outcome.first = outcome.first or t
    outcome.last = t
    day = t.astimezone(local).date()
    outcome.per_day[day] = outcome.per_day.get(day, 0) + n


def _advance(
    cohort: Cohort,
    n: int,
    t: datetime,
    steps: Sequence[StepPlan],
    future: list[tuple[datetime, int, Cohort]],
    seq: itertools.count[int],
) -> None:
    """The ``n`` leads sent at ``t`` become due for the next step after its delay (in their own zone)."""
    positions = [s.position for s in steps]
    index = positions.index(cohort.position) + 1
    if index >= len(steps):
        return
    plan = steps[index]
    tz = lead_zone(Recipient(cohort.timezone, cohort.phone))
    try:
        ready = after_delay(t, plan.delay, tz)
    except ScheduleError:
        ready = t + timedelta(minutes=plan.delay.minutes)
    follower = Cohort(plan.position, ready, n, cohort.timezone, cohort.phone, cohort.domain)
    heapq.heappush(future, (ready, next(seq), follower))


# --- reading the campaign --------------------------------------------------------------------------

_COHORTS = """
WITH e AS (
    SELECT e.id, e.created_at, e.next_step_position AS pos, e.next_due_at, m.status AS mstatus,
           m.next_attempt_at, l.timezone AS tz, l.phone,
           lower(split_part(COALESCE(l.email_normalized, l.email, ''), '@', 2)) AS domain
    FROM enrollments e
    JOIN leads l ON l.id = e.lead_id AND l.org_id = e.org_id
    LEFT JOIN campaign_steps s ON s.campaign_id = e.campaign_id AND s.position = e.next_step_position
    LEFT JOIN messages m ON m.enrollment_id = e.id AND m.step_id = s.id
    WHERE e.org_id = :org AND e.campaign_id = :campaign AND e.status IN ('active', 'paused')
), w AS (
    SELECT e.*, CASE WHEN next_due_at IS NULL AND mstatus IS NULL THEN
               row_number() OVER (PARTITION BY next_due_at IS NULL AND mstatus IS NULL ORDER BY created_at, id)
           END AS rn
    FROM e
), big AS (
    SELECT domain FROM e WHERE domain <> '' GROUP BY domain HAVING count(*) > :per_minute
)
SELECT pos, mstatus, date_trunc('minute', COALESCE(next_due_at, next_attempt_at)) AS due,
       (rn - 1) / :pacing AS paced_days, tz,
       CASE WHEN :phones THEN left(phone, 5) END AS prefix, CASE WHEN :phones THEN min(phone) END AS phone,
       CASE WHEN domain IN (SELECT domain FROM big) THEN domain END AS big_domain,
       count(*) AS n
FROM w
GROUP BY pos, mstatus, due, paced_days, tz, prefix, big_domain
"""
"""The campaign's unfinished enrollments in cohorts. A lead not launched yet (no due time, no
message) is paced as the launch paces it (the n-th starts on day floor(n / pacing)); one whose
step is in the ledger waits for its message (held: until its hold ends); a domain is kept only
when it has more leads than the per-minute pacing (a smaller one can never be held by it)."""

_USED = """
SELECT m.channel, count(*) FILTER (WHERE m.sent_at >= :hour) AS hour, count(*) AS day
FROM messages m JOIN campaigns c ON c.id = m.campaign_id
WHERE m.org_id = :org AND c.org_id = :org AND c.brand_id = :brand AND m.sent_at >= :day AND m.sent_at <= :start
GROUP BY m.channel
"""
"""What the brand's senders already sent in the hour and the UTC day of the start, by channel."""

_SENDERS = """
SELECT kind, id, hourly_limit, daily_limit, verified_at IS NOT NULL AS verified FROM senders
WHERE org_id = :org AND brand_id = :brand AND paused_at IS NULL
  AND (CAST(:pool AS jsonb) -> kind IS NULL OR CAST(:pool AS jsonb) -> kind ? id::text)
ORDER BY kind, created_at, id
"""
"""Each kind's pool as the worker reads it: the senders the campaign names (all when none), not paused."""


class ForecastReads(TenantRepository):
    """The rows a forecast reads: the campaign's unfinished enrollments in cohorts, the brand's senders."""

    async def cohorts(self, campaign: Campaign, *, phones: bool, per_minute: int) -> tuple[list[tuple[Any, ...]], int]:
        """Cohort rows ``(pos, message status, due, paced days, zone, phone, domain, count)`` and the unknown count."""
        rows = await self._sql(
            sa.text(_COHORTS),
            {
                "org": self.org_id,
                "campaign": campaign.id,
                "pacing": campaign.pacing_per_day or 2**31 - 1,
                "phones": phones,
                "per_minute": per_minute,
            },
        )
        out: list[tuple[Any, ...]] = []
        unknown = 0
        for r in rows:
            if r.mstatus == "unknown":
                unknown += int(r.n)
                continue
            out.append((r.pos, r.mstatus, r.due, r.paced_days, r.tz, r.phone, r.big_domain, int(r.n)))
        return out, unknown

    async def used(self, brand_id: uuid.UUID, start: datetime) -> dict[str, tuple[int, int]]:
        """Sends of the brand's campaigns in the hour and the UTC day of ``start``, by channel."""
        hour = datetime.fromtimestamp(_window_start(start, HOUR), UTC)
        day = datetime.fromtimestamp(_window_start(start, DAY), UTC)
        params = {"org": self.org_id, "brand": brand_id, "hour": hour, "day": day, "start": start}
        rows = await self._sql(sa.text(_USED), params)
        return {r.channel: (int(r.hour), int(r.day)) for r in rows}

    async def senders(self, campaign: Campaign) -> dict[str, list[SenderRow]]:
        """Each channel's pool: its senders' ids and own hourly and daily limits (the verified ones, if any is)."""
        params = {"org": self.org_id, "brand": campaign.brand_id, "pool": json.dumps(campaign.sender_pool or {})}
        rows = list(await self._sql(sa.text(_SENDERS), params))
        kinds: dict[str, list[SenderRow]] = {}
        for kind in {r.kind for r in rows}:
            mine = [r for r in rows if r.kind == kind]
            verified = [r for r in mine if r.verified] or mine
            kinds[kind] = [(r.id, r.hourly_limit, r.daily_limit) for r in verified]
        pairs = (("email", "email"), ("sms", "sms"), ("voicemail", "voice"))
        return {channel: kinds[kind] for channel, kind in pairs if kind in kinds}


# --- the answer ----------------------------------------------------------------------------------


class DaySends(BaseModel):
    """Sends of a step on one day of the campaign's time zone."""

    date: date
    sends: int


class StepForecast(BaseModel):
    """When a step should start and finish for the enrolled leads, and what holds it back most."""

    step_id: uuid.UUID
    position: int
    channel: str
    leads: int = Field(description="Enrolled, unfinished leads that still have this step ahead.")
    expected_start: datetime | None = Field(description="UTC; the first send expected.")
    expected_finish: datetime | None = Field(description="UTC; the last send expected (null: not within the horizon).")
    unfinished: int = Field(description="Leads not through this step within the horizon.")
    never: int = Field(description="Leads this step never reaches (no sender, no common calling window).")
    sends_per_day: list[DaySends]
    limit: str = Field(
        description="What holds the step back most: sender_daily_cap, sender_hourly_cap, domain_pacing, "
        "send_window, quiet_hours, pacing, or none (only the step's delay)."
    )
    limit_detail: str


class SenderLimits(BaseModel):
    """A sender's caps the forecast used."""

    channel: str
    sender_id: uuid.UUID | None
    hourly: int
    daily: int


class Forecast(BaseModel):
    """The send forecast of a campaign from ``starts_at``."""

    campaign_id: uuid.UUID
    starts_at: datetime
    timezone: str
    horizon_days: int
    leads: int = Field(description="Enrolled leads not finished (a paused campaign is forecast as resumed now).")
    waiting_on_operator: int = Field(description="Leads held on an unknown message; not forecast.")
    senders: list[SenderLimits]
    domain_pacing_per_minute: int
    truncated: bool = Field(description="The walk stopped at its horizon or event bound before every lead was done.")
    steps: list[StepForecast]


def _window_words(window: Mapping[str, Any] | None) -> str:
    try:
        w = SendWindow.from_json(window)
    except ScheduleError:
        w = SendWindow.always()
    days = sorted(w.weekdays)
    if days == list(range(days[0], days[-1] + 1)) and len(days) > 1:
        named = f"{WEEKDAY_NAMES[days[0]]}-{WEEKDAY_NAMES[days[-1]]}"
    else:
        named = ", ".join(WEEKDAY_NAMES[d] for d in days)
    return f"{named} {format_clock(w.start)}-{format_clock(w.end)}"


def explain(
    limit: str, plan: StepPlan, outcome: StepOutcome, capacity: Capacity, pacing: int | None, local: ZoneInfo
) -> str:
    """The binding limit and the step's finish in one sentence."""
    if limit in ("sender_daily_cap", "sender_hourly_cap", "domain_pacing"):
        cause = capacity.describe(plan.channel, limit)
    elif limit == "send_window":
        cause = f"the send window ({_window_words(plan.send_window)} in each lead's time zone) holds sends outside it"
    elif limit == "quiet_hours":
        cause = "calling hours (08:00-21:00 recipient-local, stricter in some states) hold texts and calls"
    elif limit == "pacing":
        cause = f"pacing starts {pacing or 0:,} new leads a day"
    elif limit == "no_sender":
        cause = f"the brand has no {plan.channel} sender"
    else:
        cause = "nothing holds it back beyond its delay"
    leads = f"{outcome.leads:,} lead{'s' if outcome.leads != 1 else ''}"
    if outcome.leads == 0:
        return f"{cause}; no lead has step {plan.position} ahead"
    if outcome.last is None or outcome.sent < outcome.leads - outcome.never:
        return f"{cause}; {leads} do not finish step {plan.position} within the forecast"
    return f"{cause}; {leads} finish step {plan.position} on {outcome.last.astimezone(local).date().isoformat()}"


def plans_of(campaign: Campaign, steps: Sequence[CampaignStep]) -> list[StepPlan]:
    """The walk's view of the steps."""
    return [
        StepPlan(
            s.position,
            s.channel,
            Delay(s.delay_minutes, s.delay_unit or "minutes", bool(s.business_days)),
            s.send_window or campaign.send_window,
        )
        for s in steps
    ]


def cohorts_of(
    rows: Iterable[tuple[Any, ...]], plans: Sequence[StepPlan], start: datetime, pacing: int | None
) -> list[Cohort]:
    """Cohorts from :meth:`ForecastReads.cohorts` rows, as of ``start``."""
    first = {p.position: p for p in plans}
    out = []
    for pos, mstatus, due, paced_days, tz, phone, domain, n in rows:
        charged = None
        if paced_days is not None:  # not launched yet: the launch's own rule
            minutes = first[pos].delay.minutes if pos in first else 0
            ready = start + timedelta(minutes=minutes, days=int(paced_days))
            charged = "pacing" if paced_days else None
        elif due is None:  # in the ledger, about to go
            ready = start
        else:
            ready = due
            if mstatus is None and pos == plans[0].position and pacing and due > start:
                charged = "pacing"
        out.append(Cohort(pos, ready, n, tz, phone, domain, charged))
    return out


async def forecast(
    reads: ForecastReads,
    campaign: Campaign,
    steps: Sequence[CampaignStep],
    settings: CampaignSettings,
    *,
    start: datetime,
    horizon_days: int = HORIZON_DAYS,
) -> Forecast:
    """Forecast ``campaign`` from ``start``."""
    plans = plans_of(campaign, steps)
    phones = any(p.channel in PHONE_CHANNELS for p in plans)
    rows, unknown = await reads.cohorts(campaign, phones=phones, per_minute=settings.domain_pacing_per_minute)
    capacity = capacity_of(settings, await reads.senders(campaign))
    for channel, (hour, day) in (await reads.used(campaign.brand_id, start)).items():
        for sender in capacity.senders.get(channel, []):  # today's sends fill the pool's senders in turn
            took_hour, took_day = min(hour, sender.hourly), min(day, sender.daily)
            sender.used(start, took_hour, took_day)
            hour, day = hour - took_hour, day - took_day
    cohorts = cohorts_of(rows, plans, start, campaign.pacing_per_day)
    tz_name = campaign.timezone or "UTC"
    simulation = simulate(cohorts, plans, capacity, start=start, campaign_timezone=tz_name, horizon_days=horizon_days)
    local = _zone_or_utc(tz_name)
    answers: list[StepForecast] = []
    for step, plan, outcome in zip(steps, plans, simulation.steps, strict=True):
        limit = outcome.binding() or ("no_sender" if plan.channel not in capacity.senders else "none")
        finished = outcome.last is not None and outcome.sent >= outcome.leads - outcome.never
        answers.append(
            StepForecast(
                step_id=step.id,
                position=plan.position,
                channel=plan.channel,
                leads=outcome.leads,
                expected_start=outcome.first,
                expected_finish=outcome.last if finished else None,
                unfinished=max(outcome.leads - outcome.never - outcome.sent, 0),
                never=outcome.never,
                sends_per_day=[DaySends(date=d, sends=n) for d, n in sorted(outcome.per_day.items())],
                limit=limit,
                limit_detail=explain(limit, plan, outcome, capacity, campaign.pacing_per_day, local),
            )
        )
    return Forecast(
        campaign_id=campaign.id,
        starts_at=start,
        timezone=tz_name,
        horizon_days=horizon_days,
        leads=sum(n for *_, n in rows),
        waiting_on_operator=unknown,
        senders=[
            SenderLimits(channel=s.channel, sender_id=s.sender_id, hourly=s.hourly, daily=s.daily)
            for pool in capacity.senders.values()
            for s in pool
        ],
        domain_pacing_per_minute=capacity.domains.per_minute,
        truncated=simulation.truncated,
        steps=answers,
    )
