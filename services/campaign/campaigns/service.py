"""The rules of campaigns, in domain words: edit safely, launch, pause, resume, archive, enroll."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
import structlog

from libs import compose, templating
from libs.compliance_hours import Recipient, allowance, lead_zone
from libs.db.base import utcnow
from libs.db.models.campaign import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    Channel,
    DelayUnit,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageEvent,
    ReviewMode,
)
from libs.db.models.worker import Personalization
from libs.errors import Invalid
from libs.schedule import Delay, after_delay
from libs.templating import check_template
from services.campaign.campaigns.brand_client import BrandClient
from services.campaign.campaigns.errors import (
    CampaignLocked,
    CampaignNotFound,
    EnrollmentNotFound,
    InvalidTransition,
    LeadNotFound,
    MessageNotFound,
    NotReadyToLaunch,
    StepNotFound,
)
from services.campaign.campaigns.repository import Repositories, touch
from services.campaign.campaigns.schemas import (
    TEMPLATE_FIELDS,
    CampaignCreate,
    CampaignUpdate,
    EnrollRequest,
    EnrollResult,
    LeadFilter,
    ScheduledStep,
    SchedulePreview,
    SkippedLead,
    StepCreate,
    StepPreview,
    StepPreviewRequest,
    StepUpdate,
    delay_minutes,
    reply_actions,
)

log = structlog.get_logger(__name__)

TRANSITIONS: dict[str, tuple[frozenset[CampaignStatus], CampaignStatus]] = {
    "launch": (frozenset({CampaignStatus.DRAFT}), CampaignStatus.ACTIVE),
    "pause": (frozenset({CampaignStatus.ACTIVE}), CampaignStatus.PAUSED),
    "resume": (frozenset({CampaignStatus.PAUSED}), CampaignStatus.ACTIVE),
    "archive": (
        frozenset({CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.COMPLETED}),
        CampaignStatus.ARCHIVED,
    ),
}
ENDED = frozenset({CampaignStatus.COMPLETED, CampaignStatus.ARCHIVED})
RUNNING = frozenset({CampaignStatus.ACTIVE, CampaignStatus.PAUSED})
REQUIRED_COPY = {
    Channel.EMAIL: (("subject_template", "body_template"), "an email step needs a subject and a body"),
    Channel.SMS: (("sms_template",), "an SMS step needs a message"),
}
PREVIEW_TEMPLATES = {
    "subject": "subject_template",
    "body": "body_template",
    "sms": "sms_template",
    "script": "script_template",
}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def check_transition(action: str, status: str) -> CampaignStatus:
    """Return the status ``action`` leads to from ``status``; raise InvalidTransition when not allowed."""
    allowed, target = TRANSITIONS[action]
    if CampaignStatus(status) not in allowed:
        names = ", ".join(sorted(s.value for s in allowed))
        raise InvalidTransition(
            f"A {status} campaign cannot {action}; only a campaign that is {names} can.",
            current_status=status,
            action=action,
        )
    return target


def template_errors(values: dict[str, Any], prefix: str = "") -> list[dict[str, str]]:
    """Return a field error for each template in ``values`` that does not compile or names an unknown variable."""
    errors: list[dict[str, str]] = []
    for name in TEMPLATE_FIELDS:
        source = values.get(name)
        if source:
            problem = check_template(source)
            if problem is not None:
                errors.append({"field": f"{prefix}{name}", "message": str(problem)})
    for i, variant in enumerate(values.get("variants") or []):
        errors.extend(template_errors(variant, f"{prefix}variants[{i}]."))
    return errors


async def checked_templates(values: dict[str, Any], prefix: str = "") -> list[dict[str, str]]:
    """:func:`template_errors` on a worker thread: a costly template (up to the render bounds) never stalls the loop."""
    return await anyio.to_thread.run_sync(template_errors, values, prefix)


def lead_selector(request: EnrollRequest) -> tuple[str, dict[str, Any]]:
    """Return the SQL condition over ``leads l`` the request picks, and its parameters."""
    if request.lead_ids is not None:
        return "l.id = ANY(CAST(:lead_ids AS uuid[]))", {"lead_ids": [str(i) for i in request.lead_ids]}
    if request.import_id is not None:
        return "l.import_id = :import_id", {"import_id": request.import_id}
    return filter_selector(request.filter or LeadFilter())


def filter_selector(f: LeadFilter) -> tuple[str, dict[str, Any]]:
    """Return SQL for a lead filter (every value bound, never interpolated)."""
    conditions = ["TRUE"]
    params: dict[str, Any] = {}
    if f.company is not None:
        conditions.append("lower(l.company) = lower(:f_company)")
        params["f_company"] = f.company
    if f.title_contains is not None:
        conditions.append("strpos(lower(l.title), lower(:f_title)) > 0")
        params["f_title"] = f.title_contains
    if f.email_domain is not None:
        conditions.append("split_part(l.email_normalized, '@', 2) = lower(:f_domain)")
        params["f_domain"] = f.email_domain.lstrip("@")
    if f.timezone is not None:
        conditions.append("l.timezone = :f_tz")
        params["f_tz"] = f.timezone
    if f.import_id is not None:
        conditions.append("l.import_id = :f_import")
        params["f_import"] = f.import_id
    if f.created_after is not None:
        conditions.append("l.created_at >= :f_after")
        params["f_after"] = f.created_after
    if f.created_before is not None:
        conditions.append("l.created_at < :f_before")
        params["f_before"] = f.created_before
    if f.has_email is not None:
        conditions.append("(l.email_normalized IS NOT NULL) = :f_has_email")
        params["f_has_email"] = f.has_email
    if f.has_phone is not None:
        conditions.append("(l.phone IS NOT NULL) = :f_has_phone")
        params["f_has_phone"] = f.has_phone
    if f.custom:
        conditions.append("l.custom_fields @> CAST(:f_custom AS jsonb)")
        params["f_custom"] = json.dumps(f.custom)
    return " AND ".join(conditions), params


def preview_lead(row: dict[str, Any]) -> dict[str, Any]:
    """The lead as the worker hands it to the writer (``services.worker.jobs._request``)."""
    return {
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "company": row["company"],
        "title": row["title"],
        "timezone": row["timezone"],
        "email": row["email"],
        "phone": row["phone"],
        "custom_fields": row["custom_fields"] or {},
    }


def preview_brand(row: dict[str, Any]) -> dict[str, Any]:
    """The brand as the worker hands it to the writer (``services.worker.jobs._request``)."""
    return {
        "name": row["name"],
        "website": row["website"],
        "description": row["description"],
        "value_proposition": row["value_proposition"],
        "target_audience": row["target_audience"],
        "tone_of_voice": row["tone_of_voice"],
        "proof_points": row["proof_points"] or [],
        "forbidden_claims": row["forbidden_claims"] or [],
        "email_signature": row["email_signature"],
        "sms_signoff": row["sms_signoff"],
        "postal_address": row["postal_address"],
    }


def compose_preview(
    channel: str,
    templates: dict[str, str | None],
    fields: dict[str, str],
    lead: dict[str, Any],
    brand: dict[str, Any],
    sender_name: str | None,
    opt_out: str | None,
) -> tuple[str | None, str, list[str]]:
    """Compose a message the way the worker's local writer and channel do: (subject, body, defaulted fields).

    ``libs.compose.local_write`` fills the templates (default copy where one renders empty), the
    email body is signed with :func:`libs.compose.sign`, an SMS gets :func:`libs.compose.sms_text`
    and a voicemail :func:`libs.compose.voicemail_script`, as ``services.worker`` does at send time.
    A render over a ``libs.templating`` bound raises :class:`libs.errors.Invalid` naming ``fields``' field.
    """
    defaulted: list[str] = []
    for _, template in compose.FIELDS[channel]:
        try:
            if not compose.render(templates.get(template), lead, brand, sender_name):
                defaulted.append(fields[template])
        except templating.RenderLimitExceeded as exc:
            raise Invalid(
                "The template cannot render for this lead.", errors=[{"field": fields[template], "message": str(exc)}]
            ) from exc
    content = compose.local_write(channel, templates, lead, brand, sender_name)
    if channel == "email":
        body = compose.sign(content["body"], brand.get("email_signature"))
        return content["subject"] or brand["name"], body, defaulted
    if channel == "sms":
        return None, compose.sms_text(content["text"], brand.get("sms_signoff"), opt_out), defaulted
    return None, compose.voicemail_script(content["script"], opt_out), defaulted


def _check_review(campaign: Campaign) -> None:
    """Review of the first N messages of each step needs an N."""
    if campaign.review_mode == ReviewMode.FIRST_N and campaign.review_first_n < 1:
        raise Invalid(errors=[{"field": "review_first_n", "message": "review_mode first_n needs at least 1"}])


class CampaignService:
    """Campaigns, steps and enrollments of one organization."""

    def __init__(self, repos: Repositories) -> None:
        self.repos = repos

    @property
    def org_id(self) -> uuid.UUID:
        """The organization every call acts in."""
        return self.repos.campaigns.org_id

    # --- campaigns ------------------------------------------------------------------------------

    async def get(self, campaign_id: uuid.UUID, *, for_update: bool = False) -> Campaign:
        """Return the campaign; raise CampaignNotFound."""
        campaign = await self.repos.campaigns.get(campaign_id, for_update=for_update)
        if campaign is None:
            raise CampaignNotFound("No such campaign.")
        return campaign

    async def _check_brand(self, brand_id: uuid.UUID) -> None:
        brand = await self.repos.campaigns.brand(brand_id)
        if brand is None:
            raise Invalid(errors=[{"field": "brand_id", "message": "no such brand in this organization"}])
        if brand["archived_at"] is not None:
            raise Invalid(errors=[{"field": "brand_id", "message": "the brand is archived"}])

    async def _check_pool(self, campaign: Campaign) -> None:
        """Every sender a campaign's pool names is one of its brand's senders of that kind."""
        pool = campaign.sender_pool or {}
        named = [uuid.UUID(i) for ids in pool.values() for i in ids]
        if not named:
            return
        conn = await self.repos.session.connection()
        rows = await conn.execute(
            sa.text("SELECT id, kind FROM senders WHERE org_id = :org AND brand_id = :brand AND id = ANY(:ids)"),
            {"org": self.org_id, "brand": campaign.brand_id, "ids": named},
        )
        kinds = {r.id: r.kind for r in rows}
        for kind, ids in pool.items():
            wrong = [i for i in ids if kinds.get(uuid.UUID(i)) != kind]
            if wrong:
                raise Invalid(
                    errors=[
                        {"field": f"sender_pool.{kind}", "message": f"not a {kind} sender of the brand: {wrong[0]}"}
                    ]
                )

    async def create(self, data: CampaignCreate) -> Campaign:
        """Create a draft campaign on one of the organization's brands."""
        await self._check_brand(data.brand_id)
        campaign = Campaign(
            org_id=self.org_id,
            brand_id=data.brand_id,
            name=data.name,
            description=data.description,
            timezone=data.timezone,
            send_window=data.send_window.model_dump(),
            stop_rules=data.stop_rules.model_dump(),
            reply_actions=reply_actions(data.reply_actions),
            pacing_per_day=data.pacing_per_day,
            ai=data.ai.model_dump(),
            review_mode=data.review_mode.value,
            review_first_n=data.review_first_n,
            review_deadline_hours=data.review_deadline_hours,
            review_after_deadline=data.review_after_deadline.value,
            sender_pool=data.sender_pool.stored() if data.sender_pool else None,
        )
        _check_review(campaign)
        await self._check_pool(campaign)
        await self.repos.campaigns.add(campaign)
        log.info("campaign_created", campaign_id=str(campaign.id))
        return campaign

    async def update(self, campaign_id: uuid.UUID, data: CampaignUpdate) -> Campaign:
        """Change a campaign; a running one keeps its brand, an ended one cannot change."""
        campaign = await self.get(campaign_id, for_update=True)
        if CampaignStatus(campaign.status) in ENDED:
            raise CampaignLocked(f"A {campaign.status} campaign cannot be edited; clone it instead.")
        changes = data.model_dump(exclude_unset=True)
        if "brand_id" in changes and changes["brand_id"] != campaign.brand_id:
            if changes["brand_id"] is None or campaign.status != CampaignStatus.DRAFT:
                raise CampaignLocked("The brand of a launched campaign cannot change.")
            await self._check_brand(changes["brand_id"])
        for key in ("name", "timezone", "send_window", "stop_rules", "reply_actions", "ai"):
            if key in changes and changes[key] is None:
                raise Invalid(errors=[{"field": key, "message": "cannot be null"}])
        if "reply_actions" in changes:
            changes["reply_actions"] = reply_actions(data.reply_actions)
        for key in ("review_mode", "review_first_n", "review_after_deadline"):
            if key in changes and changes[key] is None:
                raise Invalid(errors=[{"field": key, "message": "cannot be null"}])
        if "sender_pool" in changes:
            changes["sender_pool"] = data.sender_pool.stored() if data.sender_pool else None
        for key, value in changes.items():
            setattr(campaign, key, value)
        _check_review(campaign)
        await self._check_pool(campaign)
        touch(campaign)
        await self.repos.campaigns.add(campaign)
        return campaign

    async def delete(self, campaign_id: uuid.UUID) -> None:
        """Delete a draft that never sent anything; others are archived instead."""
        campaign = await self.get(campaign_id, for_update=True)
        if campaign.status != CampaignStatus.DRAFT or await self.repos.campaigns.has_messages(campaign.id):
            raise CampaignLocked("Only a draft that never sent can be deleted; archive this campaign instead.")
        await self.repos.campaigns.delete(campaign)

    async def clone(self, campaign_id: uuid.UUID, name: str | None) -> Campaign:
        """Copy a campaign and its steps into a new draft (no leads, no history)."""
        source = await self.get(campaign_id)
        copy = Campaign(
            org_id=self.org_id,
            brand_id=source.brand_id,
            name=name or f"{source.name[:193]} (copy)",
            description=source.description,
            timezone=source.timezone,
            send_window=dict(source.send_window),
            stop_rules=dict(source.stop_rules),
            reply_actions=dict(source.reply_actions),
            pacing_per_day=source.pacing_per_day,
            ai=dict(source.ai),
            review_mode=source.review_mode,
            review_first_n=source.review_first_n,
            review_deadline_hours=source.review_deadline_hours,
            review_after_deadline=source.review_after_deadline,
            sender_pool=source.sender_pool,
            cloned_from_id=source.id,
        )
        await self.repos.campaigns.add(copy)
        for step in await self.repos.steps.of_campaign(source.id):
            fields = step.model_dump(exclude={"id", "campaign_id", "created_at", "updated_at"})
            self.repos.session.add(CampaignStep(**{**fields, "campaign_id": copy.id}))
        await self.repos.session.flush()
        return copy

    async def transition(
        self, campaign_id: uuid.UUID, action: str, *, brands: BrandClient | None = None, authorization: str = ""
    ) -> Campaign:
        """Launch, pause, resume or archive; raise InvalidTransition on a move not allowed from here."""
        campaign = await self.get(campaign_id, for_update=True)
        target = check_transition(action, campaign.status)
        now = utcnow()
        if action == "launch":
            assert brands is not None
            steps = await self.repos.steps.of_campaign(campaign.id)
            await self._check_launchable(campaign, steps, brands, authorization)
            campaign.launched_at = now
            await self.repos.enrollments.schedule_waiting(campaign, steps[0].delay_minutes)
        elif action == "pause":
            campaign.paused_at = now
            await self.repos.enrollments.set_status(campaign.id, from_statuses=["active"], to=EnrollmentStatus.PAUSED)
        elif action == "resume":
            campaign.paused_at = None
            await self.repos.enrollments.set_status(
                campaign.id, from_statuses=["paused"], to=EnrollmentStatus.ACTIVE, not_before_now=True
            )
        elif action == "archive":
            campaign.archived_at = now
            await self.repos.enrollments.set_status(
                campaign.id, from_statuses=["active", "paused"], to=EnrollmentStatus.STOPPED, reason="campaign_archived"
            )
        campaign.status = target.value
        touch(campaign)
        await self.repos.campaigns.add(campaign)
        log.info("campaign_" + {"launch": "launched", "pause": "paused", "resume": "resumed"}.get(action, "archived"))
        return campaign

    async def _check_launchable(
        self, campaign: Campaign, steps: Sequence[CampaignStep], brands: BrandClient, authorization: str
    ) -> None:
        errors: list[dict[str, str]] = []
        if not steps:
            errors.append({"field": "steps", "message": "add at least one step before launching"})
        for step in steps:
            prefix = f"steps[{step.position}]."
            required = REQUIRED_COPY.get(Channel(step.channel))
            if required:
                fields, message = required
                if not all(getattr(step, f) for f in fields):
                    errors.append({"field": prefix + fields[-1], "message": message})
            elif not (step.script_template or step.audio_url):
                errors.append(
                    {"field": prefix + "script_template", "message": "a voicemail step needs a script or audio"}
                )
            errors.extend(await checked_templates(step.model_dump(), prefix))
        brand = await self.repos.campaigns.brand(campaign.brand_id)
        if brand is None or brand["archived_at"] is not None:
            errors.append({"field": "brand_id", "message": "the brand is archived or gone"})
        elif steps:
            readiness = await brands.readiness(campaign.brand_id, authorization=authorization)
            for channel, missing in readiness.missing_for(sorted({s.channel for s in steps})).items():
                errors.extend({"field": f"brand.{channel}", "message": m} for m in missing)
        if errors:
            raise NotReadyToLaunch(
                "The campaign cannot launch yet: " + "; ".join(e["message"] for e in errors), errors=errors
            )

    # --- steps ------------------------------------------------------------------------------------

    async def steps(self, campaign_id: uuid.UUID) -> Sequence[CampaignStep]:
        """Return the campaign's steps in order."""
        await self.get(campaign_id)
        return await self.repos.steps.of_campaign(campaign_id)

    async def step(self, campaign_id: uuid.UUID, step_id: uuid.UUID) -> CampaignStep:
        """Return one step; raise StepNotFound."""
        await self.get(campaign_id)
        step = await self.repos.steps.get(campaign_id, step_id)
        if step is None:
            raise StepNotFound("No such step.")
        return step

    async def add_step(self, campaign_id: uuid.UUID, data: StepCreate) -> CampaignStep:
        """Append a step (or insert one into a draft); validate its templates."""
        campaign = await self.get(campaign_id, for_update=True)
        if CampaignStatus(campaign.status) in ENDED:
            raise CampaignLocked(f"A {campaign.status} campaign cannot change.")
        values = data.model_dump(exclude={"position", "delay"}, mode="json")
        if errors := await checked_templates(values):
            raise Invalid("A template is not valid.", errors=errors)
        steps = list(await self.repos.steps.of_campaign(campaign.id))
        last = len(steps) + 1
        position = data.position or last
        if position > last:
            raise Invalid(errors=[{"field": "position", "message": f"must be between 1 and {last}"}])
        if position != last:
            if campaign.status != CampaignStatus.DRAFT:
                raise CampaignLocked("A launched campaign can only gain steps at the end.")
            order = [s.id for s in steps]
        step = CampaignStep(
            org_id=self.org_id,
            campaign_id=campaign.id,
            position=last + 1000,  # placed at the end, then renumbered if inserted
            channel=data.channel.value,
            delay_minutes=delay_minutes(data.delay, data.delay_unit, data.business_days),
            delay_unit=data.delay_unit.value,
            business_days=data.business_days,
            subject_template=data.subject_template,
            body_template=data.body_template,
            sms_template=data.sms_template,
            script_template=data.script_template,
            audio_url=str(data.audio_url) if data.audio_url else None,
            ai_instructions=data.ai_instructions,
            variants=values.get("variants") or [],
            send_window=values.get("send_window"),
        )
        await self.repos.campaigns.add(step)
        if position != last:
            order.insert(position - 1, step.id)
        else:
            order = [s.id for s in steps] + [step.id]
        await self.repos.steps.set_positions(campaign.id, order)
        touch(campaign)
        return await self.step(campaign.id, step.id)

    async def update_step(self, campaign_id: uuid.UUID, step_id: uuid.UUID, data: StepUpdate) -> CampaignStep:
        """Change a step: copy at any time before the end; channel and delay only in a draft."""
        campaign = await self.get(campaign_id, for_update=True)
        step = await self.step(campaign_id, step_id)
        if CampaignStatus(campaign.status) in ENDED:
            raise CampaignLocked(f"A {campaign.status} campaign cannot change.")
        changes = data.model_dump(exclude_unset=True, mode="json")
        if errors := await checked_templates(changes):
            raise Invalid("A template is not valid.", errors=errors)
        unit = DelayUnit(changes.get("delay_unit") or step.delay_unit)
        business = changes.get("business_days")
        business = step.business_days if business is None else business
        current_unit = DelayUnit(step.delay_unit)
        delay = changes.get("delay")
        if delay is None:
            delay = step.delay_minutes // {"minutes": 1, "hours": 60, "days": 1440}[current_unit]
        try:
            minutes = delay_minutes(delay, unit, business)
        except ValueError as exc:
            raise Invalid(errors=[{"field": "delay", "message": str(exc)}]) from exc
        timing_changed = (
            minutes != step.delay_minutes or unit.value != step.delay_unit or business != step.business_days
        )
        channel = changes.get("channel") or step.channel
        if campaign.status != CampaignStatus.DRAFT and (timing_changed or channel != step.channel):
            raise CampaignLocked(
                "A launched campaign keeps each step's channel and delay; change copy, windows or pacing, or add steps."
            )
        for key in ("subject_template", "body_template", "sms_template", "script_template", "ai_instructions"):
            if key in changes:
                setattr(step, key, changes[key])
        if "audio_url" in changes:
            step.audio_url = changes["audio_url"]
        if "variants" in changes:
            step.variants = changes["variants"] or []
        if "send_window" in changes:
            step.send_window = changes["send_window"]
        step.channel = channel
        step.delay_minutes, step.delay_unit, step.business_days = minutes, unit.value, business
        touch(step)
        await self.repos.campaigns.add(step)
        return step

    async def delete_step(self, campaign_id: uuid.UUID, step_id: uuid.UUID) -> None:
        """Remove a step from a draft and close the gap."""
        campaign = await self.get(campaign_id, for_update=True)
        step = await self.step(campaign_id, step_id)
        if campaign.status != CampaignStatus.DRAFT:
            raise CampaignLocked("Steps can only be deleted while the campaign is a draft.")
        if await self.repos.steps.has_messages(step.id):
            raise CampaignLocked("The step has messages; it cannot be deleted.")
        await self.repos.campaigns.delete(step)
        remaining = [s.id for s in await self.repos.steps.of_campaign(campaign.id)]
        await self.repos.steps.set_positions(campaign.id, remaining)

    async def reorder_steps(self, campaign_id: uuid.UUID, step_ids: Sequence[uuid.UUID]) -> Sequence[CampaignStep]:
        """Put a draft's steps in a new order."""
        campaign = await self.get(campaign_id, for_update=True)
        if campaign.status != CampaignStatus.DRAFT:
            raise CampaignLocked("Steps can only be reordered while the campaign is a draft.")
        current = {s.id for s in await self.repos.steps.of_campaign(campaign.id)}
        if set(step_ids) != current or len(step_ids) != len(current):
            raise Invalid(errors=[{"field": "step_ids", "message": "list every step of the campaign exactly once"}])
        await self.repos.steps.set_positions(campaign.id, step_ids)
        return await self.repos.steps.of_campaign(campaign.id)

    # --- enrollment -------------------------------------------------------------------------------

    async def enroll(self, campaign_id: uuid.UUID, request: EnrollRequest) -> EnrollResult:
        """Enroll leads in one set-based statement; report every skipped lead's reason."""
        campaign = await self.get(campaign_id, for_update=True)
        if CampaignStatus(campaign.status) in ENDED:
            raise CampaignLocked(f"A {campaign.status} campaign takes no new leads.")
        steps = await self.repos.steps.of_campaign(campaign.id)
        if not steps:
            raise Invalid(errors=[{"field": "steps", "message": "add steps before enrolling leads"}])
        if request.import_id is not None and not await self.repos.enrollments.import_exists(request.import_id):
            raise Invalid(errors=[{"field": "import_id", "message": "no such import in this organization"}])
        selector, params = lead_selector(request)
        status = EnrollmentStatus.ACTIVE if campaign.status == CampaignStatus.ACTIVE else EnrollmentStatus.PAUSED
        outcome = await self.repos.enrollments.enroll(
            campaign=campaign,
            channels={s.channel for s in steps},
            selector=selector,
            params=params,
            status=status,
            schedule=campaign.status != CampaignStatus.DRAFT,
            first_delay_minutes=steps[0].delay_minutes,
        )
        skipped = dict(outcome.skipped)
        examples = [SkippedLead(lead_id=i, reason=r) for i, r in outcome.examples]
        if request.lead_ids is not None:
            unique = list(dict.fromkeys(request.lead_ids))
            found = await self.repos.enrollments.existing_lead_ids(unique)
            missing = [i for i in unique if i not in found]
            if missing:
                skipped["not_found"] = len(missing)
                examples.extend(SkippedLead(lead_id=i, reason="not_found") for i in missing[:100])
        log.info("leads_enrolled", campaign_id=str(campaign.id), enrolled=outcome.enrolled, skipped=skipped)
        return EnrollResult(enrolled=outcome.enrolled, skipped=skipped, skipped_leads=examples)

    async def enrollments(
        self, campaign_id: uuid.UUID, *, limit: int, cursor: str | None, status: str | None, lead_id: uuid.UUID | None
    ) -> Sequence[Enrollment]:
        """Return a page of the campaign's enrollments."""
        await self.get(campaign_id)
        return await self.repos.enrollments.list(
            campaign_id, limit=limit, cursor=cursor, status=status, lead_id=lead_id
        )

    async def enrollment(self, campaign_id: uuid.UUID, enrollment_id: uuid.UUID) -> Enrollment:
        """Return one enrollment; raise EnrollmentNotFound."""
        await self.get(campaign_id)
        enrollment = await self.repos.enrollments.get(campaign_id, enrollment_id)
        if enrollment is None:
            raise EnrollmentNotFound("No such enrollment.")
        return enrollment

    async def stop_enrollment(self, campaign_id: uuid.UUID, enrollment_id: uuid.UUID) -> Enrollment:
        """Take a lead out of a campaign: nothing more is sent; its history stays."""
        enrollment = await self.enrollment(campaign_id, enrollment_id)
        if await self.repos.enrollments.stop(enrollment.id, reason="removed"):
            await self.repos.session.refresh(enrollment)
        return enrollment

    # --- schedule preview -------------------------------------------------------------------------

    async def schedule(
        self, campaign_id: uuid.UUID, *, lead_id: uuid.UUID | None, start: datetime | None
    ) -> SchedulePreview:
        """Preview when each step would go out for a lead, in its local time."""
        campaign = await self.get(campaign_id)
        recipient = Recipient(campaign_timezone=campaign.timezone or "UTC")
        if lead_id is not None:
            lead = await self.repos.leads.get(lead_id)
            if lead is None:
                raise LeadNotFound("No such lead.")
            recipient = Recipient(lead.timezone, lead.phone, campaign.timezone or "UTC")
        tz = lead_zone(recipient)
        steps = await self.repos.steps.of_campaign(campaign.id)
        starts_at = start or utcnow()
        times = []
        at = starts_at
        for s in steps:
            due = after_delay(at, Delay(s.delay_minutes, s.delay_unit, s.business_days), tz)
            answer = allowance(due, s.channel, s.send_window or campaign.send_window, recipient)
            if answer.at is None:
                raise Invalid(
                    "This step never goes out for this lead.",
                    errors=[{"field": f"steps[{s.position}].send_window", "message": str(answer.reason)}],
                )
            at = answer.at
            times.append(at)
        return SchedulePreview(
            campaign_id=campaign.id,
            lead_id=lead_id,
            timezone=tz.key,
            starts_at=starts_at,
            steps=[
                ScheduledStep(
                    step_id=s.id,
                    position=s.position,
                    channel=Channel(s.channel),
                    at=at,
                    local_time=at.astimezone(tz).isoformat(),
                    weekday=WEEKDAYS[at.astimezone(tz).weekday()],
                )
                for s, at in zip(steps, times, strict=True)
            ],
        )

    # --- step preview -----------------------------------------------------------------------------

    async def preview_step(self, campaign_id: uuid.UUID, step_id: uuid.UUID, data: StepPreviewRequest) -> StepPreview:
        """Render a step (or the editor's unsaved copy of it) for one lead exactly as the worker composes it.

        No model runs: the answer is the draft the worker sends when it does not personalize, and
        says whether it would. Template problems answer 422 naming the field, as a step save does.
        """
        campaign = await self.get(campaign_id)
        step = await self.step(campaign_id, step_id)
        given = data.model_dump(mode="json", include=data.model_fields_set - {"lead_id", "variant"})
        values = {**step.model_dump(include={*TEMPLATE_FIELDS, "variants", "channel"}, mode="json"), **given}
        values["variants"] = values.get("variants") or []
        if errors := await checked_templates(values):
            raise Invalid("A template is not valid.", errors=errors)
        channel = str(values["channel"])
        templates = {key: values.get(name) for key, name in PREVIEW_TEMPLATES.items()}
        fields = dict(PREVIEW_TEMPLATES)
        if data.variant is not None:
            found = [(i, v) for i, v in enumerate(values["variants"]) if v.get("key") == data.variant]
            if not found:
                raise Invalid(errors=[{"field": "variant", "message": "the step has no variant with this key"}])
            index, variant = found[0]
            for key, name in PREVIEW_TEMPLATES.items():
                if variant.get(name):  # the worker's rule: a variant's copy, else the step's
                    templates[key] = variant[name]
                    fields[key] = f"variants[{index}].{name}"
        lead_row = await self.repos.leads.preview(data.lead_id)
        if lead_row is None:
            raise LeadNotFound(
                "No such lead.", errors=[{"field": "lead_id", "message": "no such lead in this organization"}]
            )
        brand_row = await self.repos.campaigns.preview_brand(campaign.brand_id, channel)
        if brand_row is None:
            raise Invalid(errors=[{"field": "brand_id", "message": "the campaign's brand is gone"}])
        subject, body, defaulted = await anyio.to_thread.run_sync(
            compose_preview,
            channel,
            templates,
            fields,
            preview_lead(lead_row),
            preview_brand(brand_row),
            brand_row["from_name"],
            brand_row[f"opt_out_{channel}"],
        )
        would = bool(brand_row["has_openai"]) and (campaign.ai or {}).get("enabled") is not False
        notes = []
        if would:
            notes.append(
                "At send time OpenAI rewrites this draft for the lead (checked against the brand's rules; "
                "the draft is sent if the model fails); the preview does not run the model."
            )
        if channel == "email":
            notes.append("Links are tracked and the postal address and unsubscribe link are added when it is sent.")
        elif channel == "voicemail" and step.audio_url:
            notes.append("The step has a recording: it is played instead of reading the script.")
        return StepPreview(
            step_id=step.id,
            lead_id=data.lead_id,
            channel=Channel(channel),
            variant=data.variant,
            subject=subject,
            body=body,
            default_copy=defaulted,
            personalized=False,
            would_personalize=would,
            note=" ".join(notes) or None,
        )

    # --- messages ---------------------------------------------------------------------------------

    async def message(self, message_id: uuid.UUID) -> tuple[Message, Sequence[MessageEvent], Personalization | None]:
        """Return a message, its events and how its content was written; raise MessageNotFound."""
        message = await self.repos.messages.get(message_id)
        if message is None:
            raise MessageNotFound("No such message.")
        return (
            message,
            await self.repos.messages.events_of_messages([message.id]),
            await self.repos.messages.personalization(message.id),
        )
