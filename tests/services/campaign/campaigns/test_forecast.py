"""Send forecast: the simulation's binding limits, the API, and a forecast checked against a real run."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from litestar.testing import TestClient
from redis import Redis

from libs.db.session import system_session
from libs.schedule import Delay
from libs.security import Role
from services.campaign.app import create_app
from services.campaign.campaigns.brand_client import BrandClient
from services.campaign.campaigns.forecast import Cohort, StepPlan, capacity_of, simulate
from services.campaign.settings import CampaignSettings
from services.worker import jobs
from tests.services.campaign.campaigns.conftest import NOWHERE, Actor, World, seed_lead
from tests.services.worker.conftest import ctx, drain, engine, providers, smtp, wsettings  # noqa: F401
from tests.services.worker.factories import create_world
from tests.support.smtp import SmtpServer
from tests.support.tokens import TokenSigner

THURSDAY_NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SATURDAY_NOON_NY = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
ALWAYS = {"weekdays": list(range(7)), "start": "00:00", "end": "24:00"}
WEEKDAYS_9_TO_5 = {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}


def email_capacity(hourly: int | None = None, daily: int | None = None, **caps: Any) -> Any:
    return capacity_of(CampaignSettings(**caps), {"email": (uuid.uuid4(), hourly, daily)})


def one_step(channel: str = "email", window: dict[str, Any] | None = None) -> list[StepPlan]:
    return [StepPlan(1, channel, Delay(0), window)]


# --- the simulation ------------------------------------------------------------------------------


def test_the_daily_cap_binds_a_large_list() -> None:
    sim = simulate([Cohort(1, THURSDAY_NOON, 10_000)], one_step(), email_capacity(), start=THURSDAY_NOON)
    [step] = sim.steps
    assert step.sent == 10_000
    assert step.binding() == "sender_daily_cap"
    # 2,000 a day in UTC days: Thursday, then Friday to Monday.
    assert step.per_day == {THURSDAY_NOON.date() + timedelta(days=d): 2000 for d in range(5)}
    assert step.last is not None
    assert step.last.date() == datetime(2026, 12, 7, tzinfo=UTC).date()


def test_the_hourly_cap_binds_and_releases_a_second_after_the_hour() -> None:
    sim = simulate([Cohort(1, THURSDAY_NOON, 100)], one_step(), email_capacity(hourly=40), start=THURSDAY_NOON)
    [step] = sim.steps
    assert step.binding() == "sender_hourly_cap"
    assert (step.first, step.last) == (THURSDAY_NOON, THURSDAY_NOON + timedelta(hours=2, seconds=1))


def test_what_was_already_sent_this_hour_counts() -> None:
    capacity = email_capacity(hourly=40)
    capacity.senders["email"][0].used(THURSDAY_NOON + timedelta(minutes=30), 40, 40)
    sim = simulate([Cohort(1, THURSDAY_NOON, 10)], one_step(), capacity, start=THURSDAY_NOON + timedelta(minutes=30))
    assert sim.steps[0].first == THURSDAY_NOON + timedelta(hours=1, seconds=1)


def test_domain_pacing_binds_one_big_domain() -> None:
    cohorts = [Cohort(1, THURSDAY_NOON, 300, domain="bigcorp.example")]
    capacity = email_capacity(hourly=10_000, domain_pacing_per_minute=30)
    sim = simulate(cohorts, one_step(), capacity, start=THURSDAY_NOON)
    [step] = sim.steps
    assert step.binding() == "domain_pacing"
    assert step.last == THURSDAY_NOON + timedelta(minutes=9, seconds=1)


def test_the_send_window_binds_over_a_weekend() -> None:
    cohorts = [Cohort(1, SATURDAY_NOON_NY, 50, timezone="America/New_York")]
    sim = simulate(cohorts, one_step(window=WEEKDAYS_9_TO_5), email_capacity(), start=SATURDAY_NOON_NY)
    [step] = sim.steps
    assert step.binding() == "send_window"
    assert step.first == step.last == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)  # Monday 09:00 EST


def test_quiet_hours_bind_texts_at_night() -> None:
    night = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)  # 02:00 in New York
    cohorts = [Cohort(1, night, 20, timezone="America/New_York", phone="+12125550100")]
    capacity = capacity_of(CampaignSettings(), {"sms": (uuid.uuid4(), None, None)})
    sim = simulate(cohorts, one_step("sms"), capacity, start=night)
    [step] = sim.steps
    assert step.binding() == "quiet_hours"
    assert step.first == datetime(2026, 12, 3, 13, 0, tzinfo=UTC)  # 08:00 EST


def test_a_states_stricter_calling_hours_hold_texts() -> None:
    evening = datetime(2026, 12, 4, 1, 30, tzinfo=UTC)  # 20:30 in Miami and in New York
    cohorts = [
        Cohort(1, evening, 5, timezone="America/New_York", phone="+13055550100"),  # Florida: until 20:00
        Cohort(1, evening, 5, timezone="America/New_York", phone="+12125550100"),  # New York: until 21:00
    ]
    capacity = capacity_of(CampaignSettings(), {"sms": (uuid.uuid4(), None, None)})
    [step] = simulate(cohorts, one_step("sms"), capacity, start=evening).steps
    assert step.per_day == {evening.date(): 10}  # days of the campaign's zone (UTC)
    assert step.first == evening
    assert step.last == datetime(2026, 12, 4, 13, 0, tzinfo=UTC)  # Florida's at 08:00 the next morning
    assert step.binding() == "quiet_hours"


def test_a_channel_without_a_sender_never_goes() -> None:
    [step] = simulate([Cohort(1, THURSDAY_NOON, 7)], one_step("sms"), email_capacity(), start=THURSDAY_NOON).steps
    assert (step.leads, step.never, step.sent, step.last) == (7, 7, 0, None)


def test_pacing_binds_when_it_starts_fewer_leads_than_the_senders_allow() -> None:
    cohorts = [Cohort(1, THURSDAY_NOON + timedelta(days=d), 100, charged="pacing") for d in range(5)]
    sim = simulate(cohorts, one_step(), email_capacity(), start=THURSDAY_NOON)
    [step] = sim.steps
    assert step.binding() == "pacing"
    assert step.last == THURSDAY_NOON + timedelta(days=4)


def test_a_later_step_follows_its_delay_and_inherits_nothing_it_did_not_wait_for() -> None:
    steps = [StepPlan(1, "email", Delay(0), None), StepPlan(2, "email", Delay(2 * 1440, "days"), None)]
    sim = simulate([Cohort(1, THURSDAY_NOON, 100)], steps, email_capacity(), start=THURSDAY_NOON)
    first, second = sim.steps
    assert (first.leads, second.leads) == (100, 100)
    assert second.first == THURSDAY_NOON + timedelta(days=2)
    assert first.binding() is None
    assert second.binding() is None


def test_a_million_leads_cost_what_their_cohorts_cost() -> None:
    zones = ["America/New_York", "America/Chicago", "Europe/Berlin", None]
    cohorts = [Cohort(1, THURSDAY_NOON, 250_000, timezone=z) for z in zones]
    began = time.perf_counter()
    sim = simulate(cohorts, one_step(), email_capacity(daily=20_000, hourly=5_000), start=THURSDAY_NOON)
    assert time.perf_counter() - began < 5
    [step] = sim.steps
    assert (step.leads, step.sent) == (1_000_000, 1_000_000)
    assert step.binding() == "sender_daily_cap"
    assert not sim.truncated


def test_the_walk_stops_at_its_horizon() -> None:
    sim = simulate(
        [Cohort(1, THURSDAY_NOON, 10_000)], one_step(), email_capacity(daily=100), start=THURSDAY_NOON, horizon_days=3
    )
    assert sim.truncated
    assert sim.steps[0].sent < 10_000


# --- the API -------------------------------------------------------------------------------------


def _enroll(actor: Actor, campaign_id: str) -> None:
    r = actor.post(f"/api/campaigns/{campaign_id}/enrollments", {"filter": {}})
    assert r.status_code in (200, 201), r.text


def _seed_leads_on_many_domains(world: World, n: int) -> None:
    with world.db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO leads (id, org_id, email, email_normalized, status, custom_fields, created_at, "
                "updated_at) "
                "SELECT gen_random_uuid(), :org, 'l' || g || '@d' || g || '.example', 'l' || g || '@d' || g || "
                "'.example', 'active', '{}'::jsonb, now(), now() FROM generate_series(1, :n) g"
            ),
            {"org": world.a.org_id, "n": n},
        )
        # the brand's sender may send 10,000 an hour: the worker's daily cap of 2,000 is what binds
        conn.execute(sa.text("UPDATE senders SET hourly_limit = 10000 WHERE org_id = :org"), {"org": world.a.org_id})


def test_forecast_of_a_draft_names_the_limit_in_a_sentence(world: World) -> None:
    _seed_leads_on_many_domains(world, 4000)
    c = world.a.create_campaign(
        world.brand_a, send_window={"weekdays": list(range(7)), "start": "00:00", "end": "24:00"}
    )
    step = world.a.add_step(c["id"])
    _enroll(world.a, c["id"])
    r = world.a.as_role(Role.VIEWER).get(
        f"/api/campaigns/{c['id']}/forecast", params={"start": "2026-12-03T00:00:00+00:00"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["leads"] == 4000
    [s] = body["steps"]
    assert (s["step_id"], s["leads"], s["unfinished"]) == (step["id"], 4000, 0)
    assert s["limit"] == "sender_daily_cap"
    assert s["limit_detail"] == "1 email sender allows 2,000 a day; 4,000 leads finish step 1 on 2026-12-04"
    assert s["sends_per_day"] == [{"date": "2026-12-03", "sends": 2000}, {"date": "2026-12-04", "sends": 2000}]
    assert s["expected_start"].startswith("2026-12-03T00:00:00")
    assert s["expected_finish"].startswith("2026-12-04T00:00:01")


def test_forecast_of_a_paced_campaign(world: World) -> None:
    for _ in range(30):
        seed_lead(world.db, world.a.org_id)
    c = world.a.create_campaign(world.brand_a, pacing_per_day=10, send_window=ALWAYS)
    world.a.add_step(c["id"])
    _enroll(world.a, c["id"])
    r = world.a.get(f"/api/campaigns/{c['id']}/forecast", params={"start": "2026-12-03T12:00:00+00:00"})
    [s] = r.json()["steps"]
    assert s["limit"] == "pacing"
    assert s["limit_detail"] == "pacing starts 10 new leads a day; 30 leads finish step 1 on 2026-12-05"


def test_forecast_is_the_organizations_own_and_checks_its_input(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    world.a.add_step(c["id"])
    assert world.b.get(f"/api/campaigns/{c['id']}/forecast").status_code == 404
    naive = world.a.get(f"/api/campaigns/{c['id']}/forecast", params={"start": "2026-12-03T12:00:00"})
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["field"] == "start"
    far = world.a.get(f"/api/campaigns/{c['id']}/forecast", params={"horizon_days": 400})
    assert far.status_code == 422
    assert far.json()["errors"][0]["field"] == "horizon_days"
    words = world.a.get(f"/api/campaigns/{c['id']}/forecast", params={"horizon_days": "many"})
    assert words.status_code in (400, 422)
    assert words.headers["content-type"].startswith("application/problem+json")
    assert "horizon_days" in words.text
    empty = world.a.get(f"/api/campaigns/{c['id']}/forecast").json()
    assert (empty["leads"], empty["steps"][0]["expected_finish"]) == (0, None)


# --- a forecast against a real run ---------------------------------------------------------------


def _next_event(db: sa.Engine, campaign_id: uuid.UUID) -> datetime | None:
    with system_session(db) as s:
        value = s.execute(
            sa.text(
                "SELECT LEAST((SELECT min(next_attempt_at) FROM messages WHERE campaign_id = :c "
                "AND status IN ('held', 'queued')), (SELECT min(next_due_at) FROM enrollments "
                "WHERE campaign_id = :c AND status = 'active'))"
            ),
            {"c": campaign_id},
        ).scalar()
    return value if isinstance(value, datetime) else None


@contextmanager
def forecaster(context: jobs.Context, signer: TokenSigner, world: Any) -> Iterator[Callable[[], dict[str, Any]]]:
    """A viewer of ``world``'s organization asking the campaign app (on the worker's caps) for a forecast from now."""
    caps = ("email_hourly_cap", "email_daily_cap", "sms_hourly_cap", "sms_daily_cap", "domain_pacing_per_minute")
    app = create_app(
        CampaignSettings(
            database_url=context.settings.database_url,
            redis_url=context.settings.redis_url,
            **{name: getattr(context.settings, name) for name in caps},
        ),
        verifier=signer.verifier(),
        brand_client=BrandClient(NOWHERE, timeout=1.0),
    )
    with TestClient(app) as client:
        actor = Actor(client, signer, world.org_id, role=Role.VIEWER)

        def forecast_now() -> dict[str, Any]:
            r = actor.get(f"/api/campaigns/{world.campaign_id}/forecast", params={"start": context.now().isoformat()})
            assert r.status_code == 200, r.text
            return dict(r.json())

        yield forecast_now


def run_to_the_end(context: jobs.Context, redis: Redis, db: sa.Engine, campaign_id: uuid.UUID) -> list[Any]:
    """Run the ticker and a burst worker, moving the clock from one due instant to the next; each step's last send."""
    for _ in range(200):
        drain(context, redis)
        upcoming = _next_event(db, campaign_id)
        if upcoming is None:
            break
        context.settings.clock_offset_seconds += max((upcoming - context.now()).total_seconds(), 0) + 1
    with system_session(db) as s:
        return list(
            s.execute(
                sa.text(
                    "SELECT st.position, count(*) AS n, max(m.sent_at) AS last FROM messages m "
                    "JOIN campaign_steps st ON st.id = m.step_id WHERE m.campaign_id = :c AND m.status = 'sent' "
                    "GROUP BY st.position ORDER BY st.position"
                ),
                {"c": campaign_id},
            ).all()
        )


def assert_within_five_percent(forecast: dict[str, Any], rows: list[Any], launch: datetime, at_least: float) -> None:
    for row, predicted in zip(rows, forecast["steps"], strict=True):
        expected = datetime.fromisoformat(predicted["expected_finish"])
        elapsed = (row.last - launch).total_seconds()
        assert elapsed > at_least  # the limits really stretched the run
        error = abs((expected - row.last).total_seconds())
        print(f"step {row.position}: forecast {expected.isoformat()}, actual {row.last.isoformat()}, off {error:.0f} s")
        assert error <= 0.05 * elapsed, (row.position, expected, row.last)


def test_the_forecast_at_launch_matches_the_run_within_five_percent(
    ctx: jobs.Context,  # noqa: F811
    redis: Redis,
    engine: sa.Engine,  # noqa: F811
    smtp: SmtpServer,  # noqa: F811
    signer: TokenSigner,
) -> None:
    """120 leads, two email steps three hours apart, a sender allowed 40 an hour: about six hours of sending."""
    world = create_world(
        engine, channels=("email", "email"), leads=120, smtp=(smtp.host, smtp.port), hourly_limit=40, delay_minutes=180
    )
    launch = ctx.now()
    with forecaster(ctx, signer, world) as forecast_now:
        forecast = forecast_now()
        assert [s["limit"] for s in forecast["steps"]] == ["sender_hourly_cap", "sender_hourly_cap"]
        assert "1 email sender allows 40 an hour; 120 leads finish step 1 on" in forecast["steps"][0]["limit_detail"]
        drain(ctx, redis)
        # While running: 40 sent, 80 held until the next hour; the forecast still ends where it did.
        running = forecast_now()
        assert [s["leads"] for s in running["steps"]] == [80, 120]
        for before, now in zip(forecast["steps"], running["steps"], strict=True):
            assert before["expected_finish"] == now["expected_finish"]
    rows = run_to_the_end(ctx, redis, engine, world.campaign_id)
    assert [(r.position, r.n) for r in rows] == [(1, 120), (2, 120)]
    assert len(smtp.messages) == 240
    assert_within_five_percent(forecast, rows, launch, 1.5 * 3600)


def test_a_forecast_over_weekends_and_a_daily_cap_matches_the_run(
    ctx: jobs.Context,  # noqa: F811
    redis: Redis,
    engine: sa.Engine,  # noqa: F811
    smtp: SmtpServer,  # noqa: F811
    signer: TokenSigner,
) -> None:
    """150 New York leads, weekdays 09:00-17:00, 60 a day, a second step a week later: two weekends of waiting."""
    world = create_world(
        engine,
        channels=("email", "email"),
        leads=150,
        smtp=(smtp.host, smtp.port),
        delay_minutes=7 * 1440,
    )
    with system_session(engine) as s:
        s.execute(sa.text("UPDATE senders SET daily_limit = 60 WHERE org_id = :org"), {"org": world.org_id})
        # Each step carries the window itself: the worker reads a step's JSON null window as "always".
        window = json.dumps(WEEKDAYS_9_TO_5)
        s.execute(
            sa.text("UPDATE campaign_steps SET send_window = CAST(:w AS jsonb) WHERE campaign_id = :c"),
            {"w": window, "c": world.campaign_id},
        )
    # Thursday 2027-01-07 10:00 in New York.
    ctx.settings.clock_offset_seconds = (datetime(2027, 1, 7, 15, 0, tzinfo=UTC) - datetime.now(UTC)).total_seconds()
    launch = ctx.now()
    with forecaster(ctx, signer, world) as forecast_now:
        forecast = forecast_now()
    first, second = forecast["steps"]
    assert first["sends_per_day"] == [
        {"date": "2027-01-07", "sends": 60},
        {"date": "2027-01-08", "sends": 60},
        {"date": "2027-01-11", "sends": 30},
    ]
    assert first["limit"] == "sender_daily_cap"
    assert first["limit_detail"] == "1 email sender allows 60 a day; 150 leads finish step 1 on 2027-01-11"
    assert second["expected_finish"].startswith("2027-01-18T14:00:")  # Monday 09:00 EST, a week on
    rows = run_to_the_end(ctx, redis, engine, world.campaign_id)
    assert [(r.position, r.n) for r in rows] == [(1, 150), (2, 150)]
    assert_within_five_percent(forecast, rows, launch, 3 * 86400)
