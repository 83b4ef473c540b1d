"""HTTP controllers for campaigns, steps, enrollments, messages, analytics and lead timelines."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from libs.db.base import utcnow
from libs.db.models.campaign import CampaignStatus, Channel, EnrollmentStatus, MessageStatus
from libs.errors import Invalid
from libs.openapi import problems
from libs.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, make_page
from libs.scopes import READS_ONLY, Area, scope_area
from libs.security import Principal, Role, requires
from services.campaign.campaigns import forecast
from services.campaign.campaigns.analytics import campaign_analytics
from services.campaign.campaigns.brand_client import BrandClient
from services.campaign.campaigns.deps import (
    provide_brand_client,
    provide_campaign_service,
    provide_repository,
    provide_timeline_service,
)
from services.campaign.campaigns.schemas import (
    Analytics,
    CampaignClone,
    CampaignCreate,
    CampaignRead,
    CampaignUpdate,
    EnrollmentRead,
    EnrollRequest,
    EnrollResult,
    EventRead,
    MessageAudit,
    MessageDetail,
    MessageRead,
    PersonalizationRead,
    SchedulePreview,
    StepCreate,
    StepOrder,
    StepPreview,
    StepPreviewRequest,
    StepRead,
    StepUpdate,
    Timeline,
)
from services.campaign.campaigns.service import CampaignService
from services.campaign.campaigns.timeline import TimelineService

DEPENDENCIES = {
    "repo": Provide(provide_repository),
    "campaigns": Provide(provide_campaign_service),
    "timelines": Provide(provide_timeline_service),
    "brands": Provide(provide_brand_client),
}


class CampaignController(Controller):
    """Campaigns of the caller's organization and their life cycle."""

    path = "/api/campaigns"
    tags = ["campaigns"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.CAMPAIGNS)
    dependencies = DEPENDENCIES

    @get("/", operation_id="ListCampaigns")
    async def list_campaigns(
        self,
        campaigns: NamedDependency[CampaignService],
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        status: FromQuery[CampaignStatus | None] = None,
        brand_id: FromQuery[uuid.UUID | None] = None,
        name: FromQuery[str | None] = None,
    ) -> Page[CampaignRead]:
        """List campaigns, newest first, filtered by status, brand or part of the name."""
        if name is not None and len(name) > 200:
            raise Invalid(errors=[{"field": "name", "message": "at most 200 characters", "source": "query"}])
        rows = await campaigns.repos.campaigns.list(
            limit=limit, cursor=cursor, status=status.value if status else None, brand_id=brand_id, name=name
        )
        return make_page(rows, limit, CampaignRead.model_validate)

    @post("/", operation_id="CreateCampaign", guards=[requires(Role.MEMBER)], status_code=HTTP_201_CREATED)
    async def create_campaign(
        self, data: JSONBody[CampaignCreate], campaigns: NamedDependency[CampaignService]
    ) -> CampaignRead:
        """Create a draft campaign on a brand."""
        return CampaignRead.model_validate(await campaigns.create(data))

    @get("/{campaign_id:uuid}", operation_id="GetCampaign")
    async def get_campaign(
        self, campaign_id: FromPath[uuid.UUID], campaigns: NamedDependency[CampaignService]
    ) -> CampaignRead:
        """Read a campaign."""
        return CampaignRead.model_validate(await campaigns.get(campaign_id))

    @patch(
        "/{campaign_id:uuid}",
        operation_id="UpdateCampaign",
        responses=problems(409, s409="The campaign is not a draft any more."),
        guards=[requires(Role.MEMBER)],
    )
    async def update_campaign(
        self,
        campaign_id: FromPath[uuid.UUID],
        data: JSONBody[CampaignUpdate],
        campaigns: NamedDependency[CampaignService],
    ) -> CampaignRead:
        """Change a campaign (a running one: name, window, stop rules, pacing, AI settings)."""
        return CampaignRead.model_validate(await campaigns.update(campaign_id, data))

    @delete(
        "/{campaign_id:uuid}",
        operation_id="DeleteCampaign",
        responses=problems(409, s409="The campaign is not a draft any more."),
        guards=[requires(Role.MEMBER)],
        status_code=HTTP_204_NO_CONTENT,
    )
    async def delete_campaign(
        self, campaign_id: FromPath[uuid.UUID], campaigns: NamedDependency[CampaignService]
    ) -> None:
        """Delete a draft that never sent (409 otherwise: archive it)."""
        await campaigns.delete(campaign_id)

    @post("/{campaign_id:uuid}/clone", operation_id="CloneCampaign", guards=[requires(Role.MEMBER)])
    async def clone_campaign(
        self,
        campaign_id: FromPath[uuid.UUID],
        campaigns: NamedDependency[CampaignService],
        data: JSONBody[CampaignClone | None] = None,
    ) -> CampaignRead:
        """Copy a campaign and its steps into a new draft."""
        return CampaignRead.model_validate(await campaigns.clone(campaign_id, data.name if data else None))

    @post(
        "/{campaign_id:uuid}/launch",
        operation_id="LaunchCampaign",
        responses=problems(409, 503, s409="Its status does not allow a launch.", s503="Brand service down."),
        guards=[requires(Role.ADMIN)],
        status_code=200,
    )
    async def launch_campaign(
        self,
        request: Request[Any, Any, Any],
        campaign_id: FromPath[uuid.UUID],
        campaigns: NamedDependency[CampaignService],
        brands: NamedDependency[BrandClient],
    ) -> CampaignRead:
        """Launch a draft: 422 listing what the campaign or its brand still lacks."""
        authorization = request.headers.get("authorization", "")
        row = await campaigns.transition(campaign_id, "launch", brands=brands, authorization=authorization)
        return CampaignRead.model_validate(row)

    @post(
        "/{campaign_id:uuid}/pause",
        operation_id="PauseCampaign",
        responses=problems(409, s409="The campaign cannot be paused from its status."),
        guards=[requires(Role.MEMBER)],
        status_code=200,
    )
    async def pause_campaign(
        self, campaign_id: FromPath[uuid.UUID], campaigns: NamedDependency[CampaignService]
    ) -> CampaignRead:
        """Pause an active campaign: no step goes out until it resumes."""
        return CampaignRead.model_validate(await campaigns.transition(campaign_id, "pause"))

    @post(
        "/{campaign_id:uuid}/resume",
        operation_id="ResumeCampaign",
        responses=problems(409, s409="The campaign cannot be resumed from its status."),
        guards=[requires(Role.ADMIN)],
        status_code=200,
    )
    async def resume_campaign(
        self, campaign_id: FromPath[uuid.UUID], campaigns: NamedDependency[CampaignService]
    ) -> CampaignRead:
        """Resume a paused campaign where every lead left off."""
        return CampaignRead.model_validate(await campaigns.transition(campaign_id, "resume"))

    @post(
        "/{campaign_id:uuid}/archive",
        operation_id="ArchiveCampaign",
        responses=problems(409, s409="The campaign cannot be archived from its status."),
        guards=[requires(Role.MEMBER)],
        status_code=200,
    )
    async def archive_campaign(
        self, campaign_id: FromPath[uuid.UUID], campaigns: NamedDependency[CampaignService]
    ) -> CampaignRead:
        """Archive a draft, paused or completed campaign; its enrollments stop."""
        return CampaignRead.model_validate(await campaigns.transition(campaign_id, "archive"))

    @get("/{campaign_id:uuid}/schedule", operation_id="PreviewSchedule")
    async def preview_schedule(
        self,
        campaign_id: FromPath[uuid.UUID],
        campaigns: NamedDependency[CampaignService],
        lead_id: FromQuery[uuid.UUID | None] = None,
        start: FromQuery[datetime | None] = None,
    ) -> SchedulePreview:
        """Show when each step would go out for a lead (default: now, the campaign's time zone)."""
        if start is not None and start.tzinfo is None:
            raise Invalid(errors=[{"field": "start", "message": "needs a UTC offset", "source": "query"}])
        return await campaigns.schedule(campaign_id, lead_id=lead_id, start=start)

    @get("/{campaign_id:uuid}/forecast", operation_id="ForecastCampaign")
    async def forecast_campaign(
        self,
        campaign_id: FromPath[uuid.UUID],
        campaigns: NamedDependency[CampaignService],
        state: State,
        start: FromQuery[datetime | None] = None,
        horizon_days: FromQuery[int] = forecast.HORIZON_DAYS,
    ) -> forecast.Forecast:
        """Forecast when each step finishes for the enrolled leads and what limits it (default start: now)."""
        if start is not None and start.tzinfo is None:
            raise Invalid(errors=[{"field": "start", "message": "needs a UTC offset", "source": "query"}])
        if not 1 <= horizon_days <= forecast.HORIZON_DAYS:
            message = f"must be between 1 and {forecast.HORIZON_DAYS}"
            raise Invalid(errors=[{"field": "horizon_days", "message": message, "source": "query"}])
        campaign = await campaigns.get(campaign_id)
        reads = forecast.ForecastReads(campaigns.repos.session, campaigns.org_id)
        steps = await campaigns.repos.steps.of_campaign(campaign.id)
        return await forecast.forecast(
            reads, campaign, steps, state.settings, start=start or utcnow(), horizon_days=horizon_days
        )

    @get("/{campaign_id:uuid}/analytics", operation_id="GetCampaignAnalytics")
    async def analytics(
        self,
        campaign_id: FromPath[uuid.UUID],
        campaigns: NamedDependency[CampaignService],
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
    ) -> Analytics:
        """Count enrolled, sent, delivered, opened, clicked, replied, bounced, unsubscribed and failed."""
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise Invalid(errors=[{"field": name, "message": "needs a UTC offset", "source": "query"}])
        if since and until and since >= until:
            raise Invalid(errors=[{"field": "until", "message": "must be after since", "source": "query"}])
        campaign = await campaigns.get(campaign_id)
        steps = await campaigns.repos.steps.of_campaign(campaign.id)
        return await campaign_analytics(
            campaigns.repos.session,
            org_id=campaigns.org_id,
            campaign_id=campaign.id,
            positions={s.id: (s.position, s.channel) for s in steps},
            since=since,
            until=until,
        )


class StepController(Controller):
    """The ordered steps of a campaign."""

    path = "/api/campaigns/{campaign_id:uuid}/steps"
    tags = ["campaigns"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.CAMPAIGNS)
    dependencies = DEPENDENCIES

    @get("/", operation_id="ListSteps")
    async def list_steps(
        self, campaign_id: FromPath[uuid.UUID], campaigns: NamedDependency[CampaignService]
    ) -> list[StepRead]:
        """List the campaign's steps in order."""
        return [StepRead.of(s) for s in await campaigns.steps(campaign_id)]

    @post(
        "/",
        operation_id="CreateStep",
        responses=problems(409, s409="The campaign is not a draft any more."),
        guards=[requires(Role.MEMBER)],
        status_code=HTTP_201_CREATED,
    )
    async def create_step(
        self, campaign_id: FromPath[uuid.UUID], data: JSONBody[StepCreate], campaigns: NamedDependency[CampaignService]
    ) -> StepRead:
        """Add a step (at the end once launched); 422 names any template field with an unknown variable."""
        return StepRead.of(await campaigns.add_step(campaign_id, data))

    @put(
        "/order",
        operation_id="ReorderSteps",
        responses=problems(409, s409="The campaign is not a draft any more."),
        guards=[requires(Role.MEMBER)],
    )
    async def reorder_steps(
        self, campaign_id: FromPath[uuid.UUID], data: JSONBody[StepOrder], campaigns: NamedDependency[CampaignService]
    ) -> list[StepRead]:
        """Put a draft's steps in a new order (409 once launched)."""
        return [StepRead.of(s) for s in await campaigns.reorder_steps(campaign_id, data.step_ids)]

    @get("/{step_id:uuid}", operation_id="GetStep")
    async def get_step(
        self,
        campaign_id: FromPath[uuid.UUID],
        step_id: FromPath[uuid.UUID],
        campaigns: NamedDependency[CampaignService],
    ) -> StepRead:
        """Read a step."""
        return StepRead.of(await campaigns.step(campaign_id, step_id))

    @patch(
        "/{step_id:uuid}",
        operation_id="UpdateStep",
        responses=problems(409, s409="The campaign is not a draft any more."),
        guards=[requires(Role.MEMBER)],
    )
    async def update_step(
        self,
        campaign_id: FromPath[uuid.UUID],
        step_id: FromPath[uuid.UUID],
        data: JSONBody[StepUpdate],
        campaigns: NamedDependency[CampaignService],
    ) -> StepRead:
        """Change a step (once launched: its copy, AI instructions and variants only)."""
        return StepRead.of(await campaigns.update_step(campaign_id, step_id, data))

    @post(
        "/{step_id:uuid}/preview",
        operation_id="PreviewStep",
        responses=problems(404, s404="No such campaign, step or lead in this organization."),
        opt=dict(READS_ONLY),
        status_code=HTTP_200_OK,
    )
    async def preview_step(
        self,
        campaign_id: FromPath[uuid.UUID],
        step_id: FromPath[uuid.UUID],
        data: JSONBody[StepPreviewRequest],
        campaigns: NamedDependency[CampaignService],
    ) -> StepPreview:
        """Render the step (or unsaved copy of it) for a lead as the worker composes it; no AI runs, nothing is saved.

        Viewers may call it, and API keys with ``campaigns:read``. A template that does not
        compile, names an unknown variable or exceeds a render bound answers 422 naming the field.
        """
        return await campaigns.preview_step(campaign_id, step_id, data)

    @delete(
        "/{step_id:uuid}",
        operation_id="DeleteStep",
        responses=problems(409, s409="The campaign is not a draft any more."),
        guards=[requires(Role.MEMBER)],
        status_code=HTTP_204_NO_CONTENT,
    )
    async def delete_step(
        self,
        campaign_id: FromPath[uuid.UUID],
        step_id: FromPath[uuid.UUID],
        campaigns: NamedDependency[CampaignService],
    ) -> None:
        """Delete a draft's step (409 once launched)."""
        await campaigns.delete_step(campaign_id, step_id)


class EnrollmentController(Controller):
    """Leads enrolled in a campaign."""

    path = "/api/campaigns/{campaign_id:uuid}/enrollments"
    tags = ["campaigns"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.CAMPAIGNS)
    dependencies = DEPENDENCIES

    @post(
        "/",
        operation_id="EnrollLeads",
        responses=problems(409, s409="The campaign takes no enrollments in its status."),
        guards=[requires(Role.MEMBER)],
        status_code=HTTP_200_OK,
    )
    async def enroll(
        self,
        campaign_id: FromPath[uuid.UUID],
        data: JSONBody[EnrollRequest],
        campaigns: NamedDependency[CampaignService],
    ) -> EnrollResult:
        """Enroll leads by ids, import or filter; skipped leads are counted with their reason."""
        return await campaigns.enroll(campaign_id, data)

    @get("/", operation_id="ListEnrollments")
    async def list_enrollments(
        self,
        campaign_id: FromPath[uuid.UUID],
        campaigns: NamedDependency[CampaignService],
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        status: FromQuery[EnrollmentStatus | None] = None,
        lead_id: FromQuery[uuid.UUID | None] = None,
    ) -> Page[EnrollmentRead]:
        """List the campaign's enrollments, newest first."""
        rows = await campaigns.enrollments(
            campaign_id, limit=limit, cursor=cursor, status=status.value if status else None, lead_id=lead_id
        )
        return make_page(rows, limit, EnrollmentRead.model_validate)

    @get("/{enrollment_id:uuid}", operation_id="GetEnrollment")
    async def get_enrollment(
        self,
        campaign_id: FromPath[uuid.UUID],
        enrollment_id: FromPath[uuid.UUID],
        campaigns: NamedDependency[CampaignService],
    ) -> EnrollmentRead:
        """Read an enrollment."""
        return EnrollmentRead.model_validate(await campaigns.enrollment(campaign_id, enrollment_id))

    @delete(
        "/{enrollment_id:uuid}",
        operation_id="StopEnrollment",
        guards=[requires(Role.MEMBER)],
        status_code=HTTP_204_NO_CONTENT,
    )
    async def stop_enrollment(
        self,
        campaign_id: FromPath[uuid.UUID],
        enrollment_id: FromPath[uuid.UUID],
        campaigns: NamedDependency[CampaignService],
    ) -> None:
        """Take a lead out of the campaign; what was sent stays on record."""
        await campaigns.stop_enrollment(campaign_id, enrollment_id)


class MessageController(Controller):
    """The message ledger, read side."""

    path = "/api/messages"
    tags = ["messages"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.MESSAGES)
    dependencies = DEPENDENCIES

    @get("/", operation_id="ListMessages")
    async def list_messages(
        self,
        campaigns: NamedDependency[CampaignService],
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        campaign_id: FromQuery[uuid.UUID | None] = None,
        lead_id: FromQuery[uuid.UUID | None] = None,
        step_id: FromQuery[uuid.UUID | None] = None,
        status: FromQuery[MessageStatus | None] = None,
        channel: FromQuery[Channel | None] = None,
    ) -> Page[MessageRead]:
        """List messages, newest first, by campaign, lead, step, status or channel."""
        rows = await campaigns.repos.messages.list(
            limit=limit,
            cursor=cursor,
            campaign_id=campaign_id,
            lead_id=lead_id,
            step_id=step_id,
            status=status.value if status else None,
            channel=channel.value if channel else None,
        )
        return make_page(rows, limit, MessageRead.model_validate)

    @get("/{message_id:uuid}", operation_id="GetMessage")
    async def get_message(
        self,
        message_id: FromPath[uuid.UUID],
        campaigns: NamedDependency[CampaignService],
        principal: NamedDependency[Principal],
    ) -> MessageDetail:
        """Read a message with its events, oldest first, and how its content was written (its audit trail).

        Admins and owners also get ``audit``: the prompt, the input fields, the output and each
        guardrail result the worker stored; other roles get ``audit: null``.
        """
        message, events, personalization = await campaigns.message(message_id)
        audit = personalization is not None and principal.role.at_least(Role.ADMIN)
        return MessageDetail.model_validate(
            {
                **message.model_dump(),
                "events": [EventRead.model_validate(e) for e in events],
                "personalization": PersonalizationRead.model_validate(personalization) if personalization else None,
                "audit": MessageAudit.of(personalization) if audit else None,
            }
        )


class LeadTimelineController(Controller):
    """What happened, and what is about to happen, to a lead."""

    path = "/api/leads/{lead_id:uuid}/timeline"
    tags = ["leads"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.LEADS)
    dependencies = DEPENDENCIES

    @get("/", operation_id="GetLeadTimeline")
    async def timeline(self, lead_id: FromPath[uuid.UUID], timelines: NamedDependency[TimelineService]) -> Timeline:
        """Every message and event of the lead, and why each active enrollment's next step waits."""
        return await timelines.timeline(lead_id)


CONTROLLERS: list[Any] = [
    CampaignController,
    StepController,
    EnrollmentController,
    MessageController,
    LeadTimelineController,
]
