"""A lead's timeline: its messages and events, and why each active enrollment's next step waits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from libs.compliance_hours import Recipient, Verdict, allowance
from libs.db.base import utcnow
from libs.db.models.campaign import Campaign, CampaignStatus, CampaignStep, Channel, Enrollment, MessageStatus
from libs.ledger import states
from libs.schedule import ScheduleError, zone
from libs.suppression import InvalidContact
from services.campaign.campaigns.errors import LeadNotFound
from services.campaign.campaigns.repository import LeadRow, Repositories
from services.campaign.campaigns.schemas import (
    EventRead,
    Timeline,
    TimelineEnrollment,
    TimelineMessage,
    Waiting,
)
from services.campaign.leads.contact import ContactValidator

IN_FLIGHT = states.IN_FLIGHT
_PHONES = ContactValidator()


def lead_zone(lead: LeadRow, campaign_timezone: str | None) -> ZoneInfo:
    """The zone a lead's steps are scheduled in: its own, else its phone's, else the campaign's, else UTC.

    What the schedule (``libs.schedule.zone``, as the worker calls it) is given: the lead's
    zone, which the leads box infers from the phone number when the lead is written (the same
    inference is applied here to a lead recorded without one), falling back to the campaign's.
    """
    for name in (lead.timezone, _phone_zone(lead.phone), campaign_timezone):
        if name:
            try:
                return zone(name)
            except ScheduleError:
                continue
    return zone("UTC")


def _phone_zone(phone: str | None) -> str | None:
    if not phone:
        return None
    try:
        return _PHONES.phone(phone)[1]
    except InvalidContact:
        return None


def _missing_contact(lead: LeadRow, channel: str) -> Waiting | None:
    if channel == Channel.EMAIL and not lead.email_normalized:
        return Waiting(reason="no_address", detail="The lead has no email address.")
    if channel in (Channel.SMS, Channel.VOICEMAIL) and not lead.phone:
        return Waiting(reason="no_address", detail="The lead has no phone number.")
    if channel == Channel.SMS and lead.consent_sms_at is None:
        return Waiting(
            reason="no_consent",
            detail="The lead has not consented to SMS: this step will be skipped and the lead moves on to the next.",
        )
    if channel == Channel.VOICEMAIL and lead.consent_voice_at is None:
        return Waiting(
            reason="no_consent",
            detail="The lead has not consented to voicemail: this step will be skipped and the lead moves on.",
        )
    return None


def window_reason(
    now: datetime,
    due: datetime,
    channel: str,
    window_json: dict[str, object] | None,
    recipient: Recipient,
    *,
    own_window: bool = False,
) -> Waiting:
    """Say why a due step has not gone: its delay, the send window, calling hours, or nothing (due).

    The send window and calling hours are :func:`libs.compliance_hours.allowance`, the worker's
    gate's very decision, for the same lead, instant and channel.
    """
    if due > now:
        return Waiting(
            reason="waiting_for_delay", detail="The delay after the previous step has not passed.", until=due
        )
    answer = allowance(now, channel, window_json, recipient)
    where = ", ".join(z.key for z in answer.zones)
    whose = "step's" if own_window else "campaign's"
    if answer.verdict is Verdict.NO_OVERLAP:
        return Waiting(
            reason="quiet_hours",
            detail=f"The {whose} send window never meets the hours calls and texts may go out; change the window.",
        )
    if answer.verdict is Verdict.NEVER:
        return Waiting(
            reason="quiet_hours",
            detail=f"The lead may be in time zones that share no calling hours ({where}): the step will be skipped.",
        )
    if answer.verdict is Verdict.LATER:
        if answer.reason == "send_window":
            return Waiting(
                reason="outside_window",
                detail=f"Outside the {whose} send window in the lead's time zone ({where}).",
                until=answer.at,
            )
        hours = answer.rule.source if answer.rule else "08:00-21:00 (47 CFR 64.1200)"
        return Waiting(
            reason="quiet_hours",
            detail=f"Calls and texts wait for calling hours in the lead's time zone ({where}): {hours}.",
            until=answer.at,
        )
    return Waiting(reason="due", detail="Due now; the ticker picks it up on its next pass.")


class TimelineService:
    """Build lead timelines for one organization."""

    def __init__(self, repos: Repositories) -> None:
        self.repos = repos

    async def timeline(self, lead_id: uuid.UUID) -> Timeline:
        """Return the lead's timeline; raise LeadNotFound."""
        lead = await self.repos.leads.get(lead_id)
        if lead is None:
            raise LeadNotFound("No such lead.")
        messages = await self.repos.messages.lead_messages(lead_id)
        events = await self.repos.messages.lead_events(lead_id)
        by_message: dict[uuid.UUID, list[EventRead]] = {}
        for event in events:
            if event.message_id is not None:
                by_message.setdefault(event.message_id, []).append(EventRead.model_validate(event))
        rows = await self.repos.enrollments.of_lead(lead_id)
        enrollments = [await self._enrollment(lead, enrollment, campaign) for enrollment, campaign in rows]
        # The campaign a lead without a zone of its own is scheduled by: the one it is in now, else the latest.
        current = next((c for e, c in rows if e.status in ("active", "paused")), rows[0][1] if rows else None)
        return Timeline(
            lead_id=lead.id,
            timezone=lead_zone(lead, current.timezone if current is not None else None).key,
            enrollments=enrollments,
            messages=[
                TimelineMessage.model_validate({**m.model_dump(), "events": by_message.get(m.id, [])}) for m in messages
            ],
            events=[EventRead.model_validate(e) for e in events],
        )

    async def _enrollment(self, lead: LeadRow, enrollment: Enrollment, campaign: Campaign) -> TimelineEnrollment:
        steps: Sequence[CampaignStep] = await self.repos.steps.of_campaign(campaign.id)
        step = next((s for s in steps if s.position == enrollment.next_step_position), None)
        waiting = None
        if enrollment.status in ("active", "paused") and step is not None:
            waiting = await self._why_waiting(lead, enrollment, campaign, step)
        return TimelineEnrollment(
            id=enrollment.id,
            campaign_id=campaign.id,
            campaign_name=campaign.name,
            campaign_status=CampaignStatus(campaign.status),
            status=enrollment.status,
            next_step_position=enrollment.next_step_position,
            next_step_id=step.id if step else None,
            next_step_channel=Channel(step.channel) if step else None,
            next_due_at=enrollment.next_due_at,
            stopped_reason=enrollment.stopped_reason,
            created_at=enrollment.created_at,
            waiting=waiting,
        )

    async def _why_waiting(
        self, lead: LeadRow, enrollment: Enrollment, campaign: Campaign, step: CampaignStep
    ) -> Waiting:
        if campaign.status == CampaignStatus.DRAFT:
            return Waiting(reason="campaign_not_launched", detail="The campaign has not been launched.")
        if campaign.status == CampaignStatus.PAUSED or enrollment.status == "paused":
            return Waiting(reason="campaign_paused", detail="The campaign is paused.")
        if await self.repos.leads.suppressed_on(lead.id, step.channel):
            return Waiting(reason="suppressed", detail=f"The lead is on the suppression list for {step.channel}.")
        if missing := _missing_contact(lead, step.channel):
            return missing
        message = await self.repos.messages.message_for(enrollment.id, step.id)
        if message is not None:
            if message.status == MessageStatus.UNKNOWN:
                return Waiting(
                    reason="held",
                    detail="Held until an operator resolves this step's message: its send may or may not have "
                    "reached the provider (delivered moves the lead on, resend sends it once more, failed moves on).",
                    hold_reason="unknown_outcome",
                )
            if message.status == MessageStatus.HELD:
                return Waiting(
                    reason="held",
                    detail=f"Held back by the send-time checks: {message.hold_reason or 'no reason recorded'}.",
                    until=message.next_attempt_at or message.due_at,
                    hold_reason=message.hold_reason,
                )
            if message.status == MessageStatus.AWAITING_REVIEW:
                return Waiting(
                    reason="awaiting_review",
                    detail="Written and waiting for a person to approve or reject it (the campaign's review mode).",
                    until=message.review_deadline_at,
                )
            if message.status in IN_FLIGHT:
                return Waiting(
                    reason="in_flight",
                    detail=f"The message is {message.status}.",
                    until=message.next_attempt_at,
                )
        if enrollment.next_due_at is None:
            return Waiting(reason="in_flight", detail="The step is being scheduled.")
        return window_reason(
            utcnow(),
            enrollment.next_due_at,
            step.channel,
            step.send_window or campaign.send_window,
            Recipient(lead.timezone, lead.phone, campaign.timezone or "UTC"),
            own_window=step.send_window is not None,
        )
