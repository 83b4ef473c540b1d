"""The worker's and the ticker's reads of the message ledger, and the statements that touch no status.

The statements that change a message's or an enrollment's status live in :mod:`libs.ledger`
(:mod:`libs.ledger.messages`: ``DISPATCH_DUE``, ``SETTLE``, ``STEP``, ``LOST_CLAIMS``;
:mod:`libs.ledger.enrollments`: ``CLAIM_DUE_ENROLLMENTS``, ``RELEASE_HELD``, ``STOP``), with the
states' sets (:mod:`libs.ledger.states`: ``TERMINAL``); they are re-exported here, so the worker
and the ticker name every statement they run as ``ledger.X``. What stays here loads a batch
(``LOAD``, which ``load_many`` returns as typed :class:`LoadedRow` copies; ``FROZEN``), freezes
its content (``FREEZE``), renews claims' leases (``RENEW``) and finds the work the ticker
repairs (``STALE``, ``TOUCH``, ``QUEUED_OF``, ``HELD_ON_UNKNOWN``, ``DUE_WEBHOOKS``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlmodel import Session

from libs.ledger.enrollments import CLAIM_DUE_ENROLLMENTS, RELEASE_HELD, STOP
from libs.ledger.messages import DISPATCH_DUE, LOST_CLAIMS, SETTLE, STEP
from libs.ledger.states import TERMINAL

__all__ = [
    "ASSIGN",
    "CLAIM_DUE_ENROLLMENTS",
    "DISPATCH_DUE",
    "DUE_WEBHOOKS",
    "FREEZE",
    "FROZEN",
    "HANDED_OFF",
    "HELD_ON_UNKNOWN",
    "LOAD",
    "LOST_CLAIMS",
    "QUEUED_OF",
    "RELEASE_HELD",
    "RENEW",
    "SENDERS",
    "SETTLE",
    "STALE",
    "STEP",
    "STOP",
    "TERMINAL",
    "TOUCH",
    "LoadedRow",
    "load_many",
]

STALE = sa.text(
    """
    SELECT id, channel, status, updated_at FROM messages
    WHERE (status = 'queued' AND next_attempt_at IS NULL AND updated_at < :cutoff)
       OR (status = 'sending' AND next_attempt_at < :now)
    ORDER BY updated_at
    LIMIT :batch
    """
)

DUE_WEBHOOKS = sa.text(
    """
    UPDATE webhook_deliveries d
    SET next_attempt_at = :lease, updated_at = :now
    WHERE d.id IN (
        SELECT id FROM webhook_deliveries
        WHERE status = 'pending'
          AND (next_attempt_at <= :now OR (next_attempt_at IS NULL AND created_at < :cutoff))
        ORDER BY next_attempt_at NULLS FIRST
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    RETURNING d.id, d.attempts
    """
)
"""Customer webhook deliveries whose next attempt is due (or whose first job went missing), leased."""

TOUCH = sa.text("UPDATE messages SET updated_at = :now WHERE id = ANY(:ids) AND status = 'queued'")

LOAD = sa.text(
    """
    WITH batch AS MATERIALIZED (
        -- The batch's rows by primary key first, whatever the statistics say: left to itself
        -- the planner may reach them through the campaign's (campaign_id, step_id) index and
        -- filter the whole campaign, a cost that grows with every message the campaign sends.
        SELECT * FROM messages WHERE id = ANY(CAST(:ids AS uuid[]))
    )
    SELECT m.id, m.org_id, m.enrollment_id, m.step_id, m.campaign_id, m.lead_id, m.channel, m.status,
           m.attempt, m.next_attempt_at,
           e.status AS enrollment_status,
           c.status AS campaign_status, c.timezone AS campaign_timezone, c.stop_rules, c.ai,
           COALESCE(s.send_window, c.send_window) AS send_window,
           COALESCE(ns.send_window, c.send_window) AS next_send_window,
           s.position, s.subject_template, s.body_template, s.sms_template, s.script_template,
           s.audio_url AS step_audio_url, s.ai_instructions, s.variants,
           ns.id AS next_step_id, ns.channel AS next_channel, ns.delay_minutes AS next_delay_minutes,
           ns.delay_unit AS next_delay_unit, ns.business_days AS next_business_days,
           l.email, l.email_normalized, l.phone, l.first_name, l.last_name, l.company, l.title,
           l.timezone AS lead_timezone, l.custom_fields, l.consent_sms_at, l.consent_voice_at,
           l.status AS lead_status,
           b.name AS brand_name, b.website, b.description, b.value_proposition, b.target_audience,
           b.tone_of_voice, b.proof_points, b.forbidden_claims, b.email_signature, b.sms_signoff,
           b.postal_address, b.opt_out_email, b.opt_out_sms, b.opt_out_voicemail,
           snd.id AS sender_id, snd.from_name, snd.from_address, snd.reply_to, snd.smtp_host, snd.smtp_port,
           snd.smtp_security, snd.smtp_username, snd.smtp_password_encrypted, snd.hourly_limit,
           snd.daily_limit, snd.phone_number, snd.messaging_service_sid, snd.tts_voice,
           snd.audio_url AS sender_audio_url, snd.auth_mode AS sender_auth_mode,
           snd.ramp_start, snd.ramp_step, snd.min_gap_seconds, snd.max_gap_seconds, snd.provider_daily_caps,
           COALESCE(snd.verified_at, snd.created_at) AS sender_since,
           kept.sender_id AS kept_sender_id, pool.ids AS pool_sender_ids,
           (pool.ids IS NULL AND EXISTS (
               SELECT 1 FROM senders z WHERE z.brand_id = b.id AND z.kind = k.kind AND z.paused_at IS NOT NULL
                 AND (c.sender_pool -> k.kind IS NULL OR c.sender_pool -> k.kind ? z.id::text))) AS pool_paused,
           tw.account_sid AS twilio_sid, tw.secret_encrypted AS twilio_secret,
           oa.secret_encrypted AS openai_secret,
           p.content AS cached_content, p.source AS cached_source,
           thread.message_ids AS thread_message_ids, thread.provider_ids AS thread_provider_ids,
           (SELECT array_agg(DISTINCT ev.type) FROM message_events ev
             WHERE ev.lead_id = m.lead_id AND ev.campaign_id = m.campaign_id
               AND ev.type IN ('replied', 'unsubscribed', 'bounced', 'clicked')) AS stop_events
    FROM batch m
    JOIN enrollments e ON e.id = m.enrollment_id
    JOIN campaigns c ON c.id = m.campaign_id
    JOIN campaign_steps s ON s.id = m.step_id
    LEFT JOIN campaign_steps ns ON ns.campaign_id = c.id AND ns.position = s.position + 1
    JOIN leads l ON l.id = m.lead_id
    JOIN brands b ON b.id = c.brand_id
    CROSS JOIN LATERAL (
        SELECT CASE m.channel WHEN 'email' THEN 'email' WHEN 'sms' THEN 'sms' ELSE 'voice' END AS kind
    ) k
    CROSS JOIN LATERAL (
        SELECT CASE k.kind WHEN 'email' THEN e.email_sender_id WHEN 'sms' THEN e.sms_sender_id
                           ELSE e.voice_sender_id END AS sender_id
    ) kept
    LEFT JOIN LATERAL (
        -- The campaign's pool of this kind: the brand's senders it names (all when it names none),
        -- not paused, the verified ones (all when none is verified); the worker gives a lead the one
        -- with the most room left today.
        SELECT array_agg(x.id ORDER BY x.created_at, x.id) AS ids FROM senders x
        WHERE x.brand_id = b.id AND x.kind = k.kind AND x.paused_at IS NULL
          AND (c.sender_pool -> k.kind IS NULL OR c.sender_pool -> k.kind ? x.id::text)
          AND (x.verified_at IS NOT NULL OR NOT EXISTS (
                SELECT 1 FROM senders v WHERE v.brand_id = b.id AND v.kind = k.kind AND v.paused_at IS NULL
                  AND v.verified_at IS NOT NULL
                  AND (c.sender_pool -> k.kind IS NULL OR c.sender_pool -> k.kind ? v.id::text)))
    ) pool ON true
    LEFT JOIN senders snd ON snd.id = kept.sender_id AND snd.id = ANY(pool.ids)
    LEFT JOIN provider_credentials tw ON tw.org_id = m.org_id AND tw.provider = 'twilio'
    LEFT JOIN provider_credentials oa ON oa.org_id = m.org_id AND oa.provider = 'openai'
    LEFT JOIN personalizations p ON p.enrollment_id = m.enrollment_id AND p.step_id = m.step_id
                                 AND p.prompt_version = :prompt_version
    LEFT JOIN LATERAL (
        -- An email's thread: the enrollment's earlier emails that went out, in step order
        -- (through the (enrollment_id, step_id) index: a handful of rows per message).
        SELECT array_agg(pm.id ORDER BY ps.position) AS message_ids,
               array_agg(pm.provider_message_id ORDER BY ps.position) AS provider_ids
        FROM messages pm
        JOIN campaign_steps ps ON ps.id = pm.step_id
        WHERE m.channel = 'email' AND pm.enrollment_id = m.enrollment_id AND pm.channel = 'email'
          AND pm.status IN ('sent', 'delivered') AND ps.position < s.position
    ) thread ON true
    """
)
"""Everything a batch of messages needs (gate facts, templates, sender, credentials, frozen content, an
email's earlier emails to thread on), in one query."""

FROZEN = sa.text(
    """
    SELECT message_id, enrollment_id, step_id, content FROM personalizations
    WHERE prompt_version = :prompt_version AND enrollment_id = ANY(:enrollments)
    """
)

FREEZE = sa.text(
    """
    WITH sendable AS (
        -- Only messages still waiting to go, of leads not erased. The share lock on the lead
        -- orders this write against an erasure (which locks the lead FOR UPDATE first): either
        -- the erasure sees and clears this row, or this insert sees the erasure and skips.
        SELECT m.id FROM messages m JOIN leads l ON l.id = m.lead_id
        WHERE m.id = ANY(CAST(:message_ids AS uuid[])) AND m.status IN ('queued', 'held') AND l.erased_at IS NULL
        FOR SHARE OF l
    )
    INSERT INTO personalizations (id, org_id, message_id, enrollment_id, step_id, prompt_version, channel, source,
                                  model, prompt, input, output, content, fallback_reason, prompt_tokens,
                                  completion_tokens, cost_usd, latency_ms, created_at)
    SELECT gen_random_uuid(), v.org_id, v.message_id, v.enrollment_id, v.step_id, :prompt_version, v.channel,
           v.source, v.model, CAST(v.prompt AS jsonb), CAST(v.input AS jsonb), CAST(v.output AS jsonb),
           CAST(v.content AS jsonb), v.fallback_reason, v.prompt_tokens, v.completion_tokens, v.cost_usd,
           v.latency_ms, :now
    FROM unnest(CAST(:org_ids AS uuid[]), CAST(:message_ids AS uuid[]), CAST(:enrollment_ids AS uuid[]),
                CAST(:step_ids AS uuid[]), CAST(:channels AS varchar[]), CAST(:sources AS varchar[]),
                CAST(:models AS varchar[]), CAST(:prompts AS text[]), CAST(:inputs AS text[]),
                CAST(:outputs AS text[]), CAST(:contents AS text[]), CAST(:fallback_reasons AS varchar[]),
                CAST(:prompt_tokens AS integer[]), CAST(:completion_tokens AS integer[]),
                CAST(:costs AS numeric[]), CAST(:latencies AS integer[]))
        AS v(org_id, message_id, enrollment_id, step_id, channel, source, model, prompt, input, output, content,
             fallback_reason, prompt_tokens, completion_tokens, cost_usd, latency_ms)
    JOIN sendable s ON s.id = v.message_id
    ON CONFLICT (enrollment_id, step_id, prompt_version) DO NOTHING
    RETURNING message_id
    """
)
"""Freeze the content (and audit trail) of many messages; a concurrent execution's row wins a conflict."""

RENEW = sa.text(
    """
    UPDATE messages m SET next_attempt_at = :lease
    FROM unnest(CAST(:ids AS uuid[]), CAST(:attempts AS integer[])) AS v(id, attempt)
    WHERE m.id = v.id AND m.attempt = v.attempt AND m.status = 'sending'
    RETURNING m.id
    """
)
"""Extend the leases of claims the calling process still holds (same attempt, still ``sending``)."""

HELD_ON_UNKNOWN = sa.text(
    """
    SELECT m.id FROM messages m
    JOIN campaign_steps s ON s.id = m.step_id
    JOIN enrollments e ON e.id = m.enrollment_id
    WHERE m.status = 'unknown' AND m.updated_at < :cutoff
      AND e.status = 'active' AND e.next_due_at IS NULL AND e.next_step_position = s.position
    ORDER BY m.updated_at
    LIMIT :batch
    """
)
"""Unknown messages older than the hold whose enrollment still waits on their step."""

QUEUED_OF = sa.text(
    """
    SELECT id, channel FROM messages
    WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'queued' AND next_attempt_at IS NULL
    """
)
"""The messages of a dead worker's job still waiting to go (its claim, if any, runs out by its lease)."""


@dataclass(frozen=True, slots=True)
class LoadedRow:
    """One message of a batch as :data:`LOAD` reads it: one field per column, in the statement's order.

    Built once per message (:meth:`of`) and read by every stage of the job: the gate's facts, the
    writer's request, the outgoing message, the claim and the record. Columns of left joins (the
    next step, the sender, credentials, frozen content, the thread) are ``None`` when absent, and
    so is a JSON column holding ``null`` (the stages read those with a default).
    """

    # the message
    id: uuid.UUID
    org_id: uuid.UUID
    enrollment_id: uuid.UUID
    step_id: uuid.UUID
    campaign_id: uuid.UUID
    lead_id: uuid.UUID
    channel: str
    status: str
    attempt: int
    next_attempt_at: datetime | None
    # its enrollment and campaign
    enrollment_status: str
    campaign_status: str
    campaign_timezone: str
    stop_rules: dict[str, Any] | None
    ai: dict[str, Any] | None
    send_window: dict[str, Any] | None
    """The step's own window, else the campaign's."""
    next_send_window: dict[str, Any] | None
    """The next step's own window, else the campaign's."""
    # its step
    position: int
    subject_template: str | None
    body_template: str | None
    sms_template: str | None
    script_template: str | None
    step_audio_url: str | None
    ai_instructions: str | None
    variants: list[dict[str, Any]] | None
    # the next step (None when this step is the last)
    next_step_id: uuid.UUID | None
    next_channel: str | None
    next_delay_minutes: int | None
    next_delay_unit: str | None
    next_business_days: bool | None
    # the lead
    email: str | None
    email_normalized: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    lead_timezone: str | None
    custom_fields: dict[str, Any] | None
    consent_sms_at: datetime | None
    consent_voice_at: datetime | None
    lead_status: str
    # the brand
    brand_name: str
    website: str | None
    description: str | None
    value_proposition: str | None
    target_audience: str | None
    tone_of_voice: str | None
    proof_points: list[str] | None
    forbidden_claims: list[str] | None
    email_signature: str | None
    sms_signoff: str | None
    postal_address: str | None
    opt_out_email: str | None
    opt_out_sms: str | None
    opt_out_voicemail: str | None
    # the enrollment's sender of the channel's kind, while it is in the campaign's pool (None: the worker
    # assigns one of pool_sender_ids; none in the pool: the gate skips with no_sender)
    sender_id: uuid.UUID | None
    from_name: str | None
    from_address: str | None
    reply_to: str | None
    smtp_host: str | None
    smtp_port: int | None
    smtp_security: str | None
    smtp_username: str | None
    smtp_password_encrypted: str | None
    hourly_limit: int | None
    daily_limit: int | None
    phone_number: str | None
    messaging_service_sid: str | None
    tts_voice: str | None
    sender_audio_url: str | None
    sender_auth_mode: str | None  # 'oauth2': the sender logs in with XOAUTH2, not its password
    ramp_start: int | None
    ramp_step: int | None
    min_gap_seconds: int | None
    max_gap_seconds: int | None
    provider_daily_caps: dict[str, int] | None
    sender_since: datetime | None
    """When the sender's ramp started counting (verified, else created)."""
    kept_sender_id: uuid.UUID | None
    """The sender the enrollment kept for this kind, even when it left the pool (a hand-off is due)."""
    pool_sender_ids: list[uuid.UUID] | None
    pool_paused: bool | None  # no sender left in the pool because its senders are paused: hold, do not skip
    # the organization's provider credentials (encrypted)
    twilio_sid: str | None
    twilio_secret: str | None
    openai_secret: str | None
    # the content frozen for this step, if any
    cached_content: dict[str, str] | None
    cached_source: str | None
    # an email's thread: the enrollment's earlier emails that went out, in step order
    thread_message_ids: list[uuid.UUID] | None
    thread_provider_ids: list[str | None] | None
    stop_events: list[str] | None
    """The lead's replied, unsubscribed, bounced and clicked events in this campaign."""

    @classmethod
    def of(cls, row: Row[Any]) -> Self:
        """The typed copy of one :data:`LOAD` row (a column missing from the statement raises ``KeyError``)."""
        mapping = row._mapping
        return cls(**{name: mapping[name] for name in LOADED_COLUMNS})


LOADED_COLUMNS = tuple(f.name for f in fields(LoadedRow))
"""The columns :data:`LOAD` returns, in order: the fields of :class:`LoadedRow`."""


SENDERS = sa.text(
    """
    SELECT id AS sender_id, from_name, from_address, reply_to, smtp_host, smtp_port, smtp_security, smtp_username,
           smtp_password_encrypted, hourly_limit, daily_limit, phone_number, messaging_service_sid, tts_voice,
           audio_url AS sender_audio_url, auth_mode AS sender_auth_mode, ramp_start, ramp_step, min_gap_seconds,
           max_gap_seconds, provider_daily_caps, COALESCE(verified_at, created_at) AS sender_since
    FROM senders WHERE id = ANY(CAST(:ids AS uuid[]))
    """
)
"""The sender columns of :class:`LoadedRow` for the senders a batch may be given (the pools' members)."""

ASSIGN = sa.text(
    """
    UPDATE enrollments e SET
        email_sender_id = CASE WHEN v.kind = 'email' THEN v.sender_id ELSE e.email_sender_id END,
        sms_sender_id = CASE WHEN v.kind = 'sms' THEN v.sender_id ELSE e.sms_sender_id END,
        voice_sender_id = CASE WHEN v.kind = 'voice' THEN v.sender_id ELSE e.voice_sender_id END,
        updated_at = :now
    FROM unnest(CAST(:ids AS uuid[]), CAST(:kinds AS varchar[]), CAST(:senders AS uuid[])) AS v(id, kind, sender_id)
    WHERE e.id = v.id
    """
)
"""Give enrollments the sender they keep for one kind of step (``kinds``: email, sms or voice)."""


HANDED_OFF = sa.text(
    """
    INSERT INTO message_events (id, org_id, message_id, lead_id, campaign_id, type, occurred_at, data)
    SELECT gen_random_uuid(), v.org_id, v.message_id, v.lead_id, v.campaign_id, 'sender_changed', :now,
           jsonb_build_object('kind', v.kind, 'from_sender_id', v.from_id, 'to_sender_id', v.to_id)
    FROM unnest(CAST(:org_ids AS uuid[]), CAST(:message_ids AS uuid[]), CAST(:lead_ids AS uuid[]),
                CAST(:campaign_ids AS uuid[]), CAST(:kinds AS varchar[]), CAST(:from_ids AS uuid[]),
                CAST(:to_ids AS uuid[])) AS v(org_id, message_id, lead_id, campaign_id, kind, from_id, to_id)
    """
)
"""The timeline's record of leads handed from a sender that left the pool (paused, removed) to another."""


def load_many(session: Session, message_ids: Sequence[uuid.UUID], prompt_version: str) -> list[LoadedRow]:
    """Everything a batch of messages needs, in one round trip, one typed row per message found."""
    rows = session.execute(LOAD, {"ids": list(message_ids), "prompt_version": prompt_version})
    return [LoadedRow.of(row) for row in rows]
