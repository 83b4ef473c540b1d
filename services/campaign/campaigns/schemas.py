"""Request and response bodies of campaigns, steps, enrollments, messages, analytics and timelines."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator

from libs.db.models.campaign import (
    DEFAULT_REPLY_ACTIONS,
    CampaignStatus,
    Channel,
    DelayUnit,
    EnrollmentStatus,
    EventType,
    MessageStatus,
    ReplyAction,
    ReviewAfterDeadline,
    ReviewMode,
)
from libs.replies.intents import Intent
from libs.schedule import MINUTES_PER_DAY, ScheduleError, SendWindow, is_valid_zone, parse_clock

Name = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(max_length=4000)]
MAX_DELAY_MINUTES = 366 * MINUTES_PER_DAY
UNIT_MINUTES = {DelayUnit.MINUTES: 1, DelayUnit.HOURS: 60, DelayUnit.DAYS: MINUTES_PER_DAY}
MAX_LEAD_IDS = 10_000


class Strict(BaseModel):
    """A request body: unknown fields are refused, strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Read(BaseModel):
    """A response body built from rows."""

    model_config = ConfigDict(from_attributes=True)


# --- campaigns --------------------------------------------------------------------------------


class SendWindowIn(Strict):
    """Weekdays (0 = Monday .. 6 = Sunday) and local start/end ``HH:MM`` (end exclusive, ``24:00`` allowed)."""

    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4], min_length=1, max_length=7
    )
    start: str = Field(default="09:00", max_length=5)
    end: str = Field(default="17:00", max_length=5)

    @model_validator(mode="after")
    def _valid(self) -> Self:
        try:
            parse_clock(self.start)
            parse_clock(self.end)
            SendWindow.of(self.weekdays, self.start, self.end)
        except ScheduleError as exc:
            raise ValueError(str(exc)) from exc
        self.weekdays = sorted(set(self.weekdays))
        return self


class StopRules(Strict):
    """When an enrollment stops: on reply and unsubscribe by default."""

    on_reply: bool = True
    on_click: bool = False
    on_unsubscribe: bool = True
    on_bounce: bool = False


class AISettings(Strict):
    """Personalization with a language model."""

    enabled: bool = True
    instructions: LongText | None = None
    model: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9._:\-]+$")


ReplyActions = dict[Intent, ReplyAction]
"""Reply intent -> what the campaign does with it; intents left out keep their default."""


def reply_actions(given: dict[Intent, ReplyAction] | None) -> dict[str, str]:
    """The full map stored on a campaign: the safe defaults, overridden by ``given``."""
    return {**DEFAULT_REPLY_ACTIONS, **{intent.value: action.value for intent, action in (given or {}).items()}}


def _check_zone(value: str | None) -> str | None:
    if value is not None and not is_valid_zone(value):
        raise ValueError(f"unknown time zone: {value}")
    return value


class SenderPool(Strict):
    """The senders each kind of step goes from; a kind left out (or null) sends from all the brand's senders."""

    email: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=200)
    sms: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=200)
    voice: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=200)

    def stored(self) -> dict[str, list[str]] | None:
        """The form ``campaigns.sender_pool`` keeps (kinds named only), or None for all senders of every kind."""
        pool = {kind: [str(i) for i in dict.fromkeys(ids)] for kind, ids in self.model_dump().items() if ids}
        return pool or None


class CampaignCreate(Strict):
    """A new campaign (a draft)."""

    brand_id: uuid.UUID
    name: Name
    description: str | None = Field(default=None, max_length=2000)
    timezone: str = Field(default="UTC", max_length=64, description="Used for leads without a time zone.")
    send_window: SendWindowIn = Field(default_factory=SendWindowIn)
    stop_rules: StopRules = Field(default_factory=StopRules)
    reply_actions: ReplyActions = Field(
        default_factory=dict, description="Reply intent -> action; intents left out keep their safe default."
    )
    pacing_per_day: int | None = Field(default=None, ge=1, le=1_000_000, description="New leads started per day.")
    ai: AISettings = Field(default_factory=AISettings)
    review_mode: ReviewMode = Field(
        default=ReviewMode.OFF, description="Messages a person approves first: none, the first N of each step, all."
    )
    review_first_n: int = Field(default=0, ge=0, le=10_000, description="N for review_mode first_n.")
    review_deadline_hours: int | None = Field(default=None, ge=1, le=24 * 90, description="None: wait for ever.")
    review_after_deadline: ReviewAfterDeadline = Field(
        default=ReviewAfterDeadline.SKIP, description="What a message still awaiting review becomes at its deadline."
    )
    sender_pool: SenderPool | None = Field(
        default=None, description="The brand's senders each kind of step goes from; null: all of them."
    )

    _zone = field_validator("timezone")(_check_zone)


class CampaignUpdate(Strict):
    """Fields to change; omitted fields stay as they are."""

    brand_id: uuid.UUID | None = None
    name: Name | None = None
    description: str | None = Field(default=None, max_length=2000)
    timezone: str | None = Field(default=None, max_length=64)
    send_window: SendWindowIn | None = None
    stop_rules: StopRules | None = None
    reply_actions: ReplyActions | None = Field(
        default=None, description="Reply intent -> action; intents left out go back to their default."
    )
    pacing_per_day: int | None = Field(default=None, ge=1, le=1_000_000)
    ai: AISettings | None = None
    review_mode: ReviewMode | None = None
    review_first_n: int | None = Field(default=None, ge=0, le=10_000)
    review_deadline_hours: int | None = Field(default=None, ge=1, le=24 * 90)
    review_after_deadline: ReviewAfterDeadline | None = None
    sender_pool: SenderPool | None = Field(default=None, description="null: send from all the brand's senders.")

    _zone = field_validator("timezone")(_check_zone)


class CampaignClone(Strict):
    """Options for a clone."""

    name: Name | None = None


class CampaignRead(Read):
    """A campaign."""

    id: uuid.UUID
    brand_id: uuid.UUID
    name: str
    description: str | None
    status: CampaignStatus
    timezone: str
    send_window: dict[str, Any]
    stop_rules: dict[str, Any]
    reply_actions: dict[str, Any]
    pacing_per_day: int | None
    ai: dict[str, Any]
    review_mode: ReviewMode
    review_first_n: int
    review_deadline_hours: int | None
    review_after_deadline: ReviewAfterDeadline
    sender_pool: dict[str, list[uuid.UUID]] | None
    """Sender ids by kind (email, sms, voice); a kind left out sends from all the brand's senders."""
    cloned_from_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    launched_at: datetime | None
    paused_at: datetime | None
    completed_at: datetime | None
    archived_at: datetime | None


# --- steps ------------------------------------------------------------------------------------

TEMPLATE_FIELDS = ("subject_template", "body_template", "sms_template", "script_template")


class VariantIn(Strict):
    """An A/B variant: overrides of the step's copy, chosen by weight."""

    key: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,32}$")
    weight: int = Field(default=1, ge=1, le=1000)
    subject_template: str | None = Field(default=None, max_length=1000)
    body_template: str | None = Field(default=None, max_length=50_000)
    sms_template: str | None = Field(default=None, max_length=1600)
    script_template: str | None = Field(default=None, max_length=5000)
    ai_instructions: LongText | None = None


class StepFields(Strict):
    """Fields a step create and update share."""

    subject_template: str | None = Field(default=None, max_length=1000)
    body_template: str | None = Field(default=None, max_length=50_000)
    sms_template: str | None = Field(default=None, max_length=1600)
    script_template: str | None = Field(default=None, max_length=5000)
    audio_url: AnyHttpUrl | None = Field(default=None, description="A recorded voicemail (https).")
    ai_instructions: LongText | None = None
    variants: list[VariantIn] | None = Field(default=None, max_length=10)
    send_window: SendWindowIn | None = Field(
        default=None,
        description="The step's own send window; null keeps to the campaign's (null in an update clears it).",
    )

    @field_validator("audio_url")
    @classmethod
    def _https(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if value is not None and value.scheme != "https":
            raise ValueError("must be an https URL")
        return value

    @field_validator("variants")
    @classmethod
    def _unique_keys(cls, value: list[VariantIn] | None) -> list[VariantIn] | None:
        if value is not None and len({v.key for v in value}) != len(value):
            raise ValueError("variant keys must be unique")
        return value


class StepCreate(StepFields):
    """A new step; it is appended unless ``position`` says where (drafts only)."""

    channel: Channel
    delay: int = Field(default=0, ge=0, description="Wait after the previous step, in delay_unit.")
    delay_unit: DelayUnit = DelayUnit.DAYS
    business_days: bool = Field(default=False, description="Count days Monday to Friday only (delay_unit days).")
    position: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _delay(self) -> Self:
        _check_delay(self.delay, self.delay_unit, self.business_days)
        return self


class StepUpdate(StepFields):
    """Fields to change; omitted fields stay as they are."""

    channel: Channel | None = None
    delay: int | None = Field(default=None, ge=0)
    delay_unit: DelayUnit | None = None
    business_days: bool | None = None


def _check_delay(delay: int, unit: DelayUnit, business_days: bool) -> int:
    minutes = delay * UNIT_MINUTES[unit]
    if minutes > MAX_DELAY_MINUTES:
        raise ValueError("a delay may be at most 366 days")
    if business_days and unit is not DelayUnit.DAYS:
        raise ValueError("business_days needs delay_unit 'days'")
    return minutes


def delay_minutes(delay: int, unit: DelayUnit, business_days: bool) -> int:
    """Return the delay in minutes, checking its bounds; raise ValueError when out of bounds."""
    return _check_delay(delay, unit, business_days)


class StepRead(Read):
    """A step of a campaign."""

    id: uuid.UUID
    campaign_id: uuid.UUID
    position: int
    channel: Channel
    delay: int
    delay_unit: DelayUnit
    delay_minutes: int
    business_days: bool
    subject_template: str | None
    body_template: str | None
    sms_template: str | None
    script_template: str | None
    audio_url: str | None
    ai_instructions: str | None
    variants: list[dict[str, Any]]
    send_window: dict[str, Any] | None = Field(description="The step's own send window; null: the campaign's.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, step: Any) -> StepRead:
        """Build from a step row."""
        unit = DelayUnit(step.delay_unit)
        return cls.model_validate(
            {**step.model_dump(), "delay": step.delay_minutes // UNIT_MINUTES[unit], "delay_unit": unit}
        )


class StepOrder(Strict):
    """Every step id of the campaign, in the new order."""

    step_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)


# --- enrollment -------------------------------------------------------------------------------


class LeadFilter(Strict):
    """Which leads to enroll; every given condition must hold (an empty filter means every lead)."""

    company: str | None = Field(default=None, max_length=200, description="Exact, case-insensitive.")
    title_contains: str | None = Field(default=None, max_length=200)
    email_domain: str | None = Field(default=None, max_length=255)
    timezone: str | None = Field(default=None, max_length=64)
    import_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    has_email: bool | None = None
    has_phone: bool | None = None
    custom: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=500)]] | None = Field(
        default=None, max_length=20, description="Custom fields that must equal these values."
    )


class EnrollRequest(Strict):
    """Enroll leads by ids, by import, or by filter (exactly one)."""

    lead_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=MAX_LEAD_IDS)
    import_id: uuid.UUID | None = None
    filter: LeadFilter | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [n for n in ("lead_ids", "import_id", "filter") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of lead_ids, import_id or filter")
        return self


SkipReason = Literal[
    "not_found",
    "erased",
    "suppressed",
    "no_email",
    "no_phone",
    "no_sms_consent",
    "no_voicemail_consent",
    "active_in_other_campaign",
    "already_enrolled",
]


class SkippedLead(BaseModel):
    """A lead that was not enrolled, and why."""

    lead_id: uuid.UUID
    reason: SkipReason


class EnrollResult(BaseModel):
    """What an enrollment did: how many were enrolled, how many skipped and why (with examples)."""

    enrolled: int
    skipped: dict[str, int]
    skipped_leads: list[SkippedLead] = Field(description="Up to 100 examples per reason.")


class EnrollmentRead(Read):
    """A lead's progress through a campaign."""

    id: uuid.UUID
    campaign_id: uuid.UUID
    lead_id: uuid.UUID
    status: EnrollmentStatus
    next_step_position: int
    next_due_at: datetime | None
    stopped_reason: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


# --- schedule preview -------------------------------------------------------------------------


class ScheduledStep(BaseModel):
    """When a step would go out for a lead."""

    step_id: uuid.UUID
    position: int
    channel: Channel
    at: datetime = Field(description="UTC.")
    local_time: str = Field(description="ISO 8601 in the lead's time zone, with offset.")
    weekday: str


class SchedulePreview(BaseModel):
    """A lead's schedule if each step went out the moment it was allowed."""

    campaign_id: uuid.UUID
    lead_id: uuid.UUID | None
    timezone: str
    starts_at: datetime
    steps: list[ScheduledStep]


# --- step preview -----------------------------------------------------------------------------


class StepPreviewRequest(Strict):
    """A lead to render a step for, and optionally the editor's unsaved copy.

    Each template field given (even ``null``) stands in for the saved one; omitted fields keep
    the saved step's. ``variant`` picks one of the step's A/B variants by key (its copy then
    overrides the step's, as at send time); omitted, the step's own copy is rendered.
    """

    lead_id: uuid.UUID
    variant: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,32}$")
    channel: Channel | None = Field(default=None, description="An unsaved channel; default: the step's.")
    subject_template: str | None = Field(default=None, max_length=1000)
    body_template: str | None = Field(default=None, max_length=50_000)
    sms_template: str | None = Field(default=None, max_length=1600)
    script_template: str | None = Field(default=None, max_length=5000)
    variants: list[VariantIn] | None = Field(default=None, max_length=10, description="Unsaved A/B variants.")

    @field_validator("variants")
    @classmethod
    def _unique_keys(cls, value: list[VariantIn] | None) -> list[VariantIn] | None:
        if value is not None and len({v.key for v in value}) != len(value):
            raise ValueError("variant keys must be unique")
        return value


class StepPreview(BaseModel):
    """A step rendered for one lead exactly as the worker composes it when no model rewrites it."""

    step_id: uuid.UUID
    lead_id: uuid.UUID
    channel: Channel
    variant: str | None = Field(description="The A/B variant rendered; null: the step's own copy.")
    subject: str | None = Field(description="The email subject; null for SMS and voicemail.")
    body: str = Field(
        description="The email body with the brand's signature, the SMS text with sign-off and opt-out "
        "wording, or the voicemail script with opt-out wording."
    )
    default_copy: list[str] = Field(
        description="Template fields that rendered empty or were missing, so the default copy stands in."
    )
    personalized: bool = Field(default=False, description="Always false: a preview never runs AI personalization.")
    would_personalize: bool = Field(
        description="Whether the worker would have OpenAI rewrite this draft at send time (AI enabled, key set)."
    )
    note: str | None = Field(description="What differs at send time, if anything.")


# --- messages ---------------------------------------------------------------------------------


class EventRead(Read):
    """Something that happened to a message."""

    id: uuid.UUID
    message_id: uuid.UUID | None
    campaign_id: uuid.UUID | None
    lead_id: uuid.UUID
    type: EventType
    occurred_at: datetime
    data: dict[str, Any]


class MessageRead(Read):
    """A ledger row: one message of one step to one lead."""

    id: uuid.UUID
    enrollment_id: uuid.UUID
    step_id: uuid.UUID
    campaign_id: uuid.UUID
    lead_id: uuid.UUID
    channel: Channel
    variant: str | None
    status: MessageStatus
    attempt: int
    due_at: datetime | None
    next_attempt_at: datetime | None
    hold_reason: str | None
    provider_message_id: str | None
    subject: str | None
    body: str | None
    error_code: str | None
    error_detail: str | None
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime


class PersonalizationRead(Read):
    """Who wrote a message's content: OpenAI, the local template writer, or the template after a model failure."""

    source: Literal["openai", "local", "fallback"]
    model: str
    prompt_version: str
    fallback_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: int
    created_at: datetime


class GuardrailResult(BaseModel):
    """One check the worker ran on what the model wrote, as it recorded the outcome."""

    check: Literal["output", "model_response"] = Field(
        description="`output`: the written message's checks (schema, length, placeholders, links, claims); "
        "`model_response`: whether the model answered at all (timeouts, refusals, bad JSON)."
    )
    passed: bool
    reason: str | None = Field(description="The stable code of the failure (`foreign_link`, `openai_timeout`...).")


OUTPUT_FAILURE = "invalid_output:"
"""The worker's ``fallback_reason`` prefix for an answer the output checks refused."""


def guardrail_results(source: str, fallback_reason: str | None) -> list[GuardrailResult]:
    """The checks a personalization went through, from what the worker stored (the local writer has none)."""
    if source == "openai":
        return [GuardrailResult(check="output", passed=True, reason=None)]
    if source != "fallback" or not fallback_reason:
        return []
    if fallback_reason.startswith(OUTPUT_FAILURE):
        reason = fallback_reason.removeprefix(OUTPUT_FAILURE)
        return [
            GuardrailResult(check="model_response", passed=True, reason=None),
            GuardrailResult(check="output", passed=False, reason=reason),
        ]
    return [GuardrailResult(check="model_response", passed=False, reason=fallback_reason)]


class MessageAudit(BaseModel):
    """What the writer was asked and answered for a message, and the checks its answer went through."""

    prompt: list[dict[str, Any]] = Field(description="The messages sent to the model (empty for the local writer).")
    input: dict[str, Any] = Field(description="The lead fields the content was written from.")
    output: dict[str, Any] | None = Field(description="What the model answered (null when it answered nothing).")
    content: dict[str, Any] = Field(description="The content that was used, after the checks.")
    guardrails: list[GuardrailResult]

    @classmethod
    def of(cls, personalization: Any) -> Self:
        """The audit of a stored personalization."""
        return cls(
            prompt=personalization.prompt,
            input=personalization.input,
            output=personalization.output,
            content=personalization.content,
            guardrails=guardrail_results(personalization.source, personalization.fallback_reason),
        )


class MessageDetail(MessageRead):
    """A message with its events, oldest first, and how its content was written: its audit trail."""

    events: list[EventRead]
    personalization: PersonalizationRead | None = Field(
        default=None, description="The worker's record of how the content was written (null before it was)."
    )
    audit: MessageAudit | None = Field(
        default=None,
        description="Admins and owners only: the prompt, the input fields, the output and each guardrail result "
        "(null for other roles, and before the content was written).",
    )


# --- analytics --------------------------------------------------------------------------------

METRICS = ("sent", "delivered", "opened", "clicked", "replied", "bounced", "unsubscribed", "failed")


class Counts(BaseModel):
    """Messages that had each event at least once (events without a message count once each)."""

    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0
    bounced: int = 0
    unsubscribed: int = 0
    failed: int = 0


class Totals(Counts):
    """Campaign totals, with the leads enrolled."""

    enrolled: int = 0


class StepCounts(Counts):
    """Counts of one step."""

    step_id: uuid.UUID
    position: int | None
    channel: Channel | None


class VariantCounts(Counts):
    """Counts of one variant of one step (``variant`` null: no A/B test)."""

    step_id: uuid.UUID
    variant: str | None


class ChannelCounts(Counts):
    """Counts of one channel."""

    channel: Channel


class HourCounts(Totals):
    """Counts in one hour (UTC); hours without activity are left out."""

    hour: datetime


class Analytics(BaseModel):
    """A campaign's numbers, read from its rollups (kept from its event rows as they land)."""

    campaign_id: uuid.UUID
    since: datetime | None
    until: datetime | None
    totals: Totals
    by_step: list[StepCounts]
    by_variant: list[VariantCounts]
    by_channel: list[ChannelCounts]
    hourly: list[HourCounts]


# --- timeline ---------------------------------------------------------------------------------

WaitReason = Literal[
    "due",
    "in_flight",
    "waiting_for_delay",
    "outside_window",
    "quiet_hours",
    "held",
    "awaiting_review",
    "suppressed",
    "no_consent",
    "no_address",
    "campaign_paused",
    "campaign_not_launched",
]


class Waiting(BaseModel):
    """Why an active enrollment's next step has not gone yet."""

    reason: WaitReason
    detail: str
    until: datetime | None = None
    hold_reason: str | None = None


class TimelineEnrollment(BaseModel):
    """An enrollment on a lead's timeline."""

    id: uuid.UUID
    campaign_id: uuid.UUID
    campaign_name: str
    campaign_status: CampaignStatus
    status: EnrollmentStatus
    next_step_position: int
    next_step_id: uuid.UUID | None
    next_step_channel: Channel | None
    next_due_at: datetime | None
    stopped_reason: str | None
    created_at: datetime
    waiting: Waiting | None


class TimelineMessage(MessageRead):
    """A message on a lead's timeline, with its events."""

    events: list[EventRead]


class Timeline(BaseModel):
    """Everything that happened, and is about to happen, to one lead."""

    lead_id: uuid.UUID
    timezone: str
    enrollments: list[TimelineEnrollment]
    messages: list[TimelineMessage]
    events: list[EventRead] = Field(description="Every event of the lead, oldest first.")
