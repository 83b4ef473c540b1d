"""What every inbound controller shares: the rules' context (built once per app) and the hand-off of effects."""

from __future__ import annotations

from litestar.datastructures import State

from libs.queue import PendingJobs
from services.campaign.inbound.events import Context, Effects
from services.campaign.inbound.settings import inbound_settings_from
from services.campaign.keys import suppression_key


async def provide_inbound(state: State) -> Context:
    """Dependency: settings and keys of the inbound routes (built once per app)."""
    ctx = state.get("inbound_context")
    if ctx is None:
        settings = state.get("inbound_settings") or inbound_settings_from(state.settings)
        ctx = Context.from_settings(settings, suppression_key=await suppression_key(state))
        state.inbound_context = ctx
    return ctx


def push(jobs: PendingJobs, effects: Effects) -> None:
    """Hand the jobs a unit of work asked for to the request's ``PendingJobs`` (enqueued after the commit)."""
    for job in effects.jobs:
        jobs.add(job)
