"""Every statement on the message ledger the worker and the ticker run; conditional updates only.

State machine (DESIGN.md): queued -> rendering -> sending -> sent | failed | bounced | unknown,
plus held (waiting for a time, with ``next_attempt_at``) and skipped. While a row is
``sending`` its ``next_attempt_at`` is the claim's lease: past it, the claimer is presumed
dead and the row becomes ``unknown`` (never resent).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlmodel import Session

TERMINAL = ("sent", "delivered", "failed", "bounced", "unknown", "skipped")

CLAIM_DUE_ENROLLMENTS = sa.text(
    """
    WITH due AS (
        SELECT e.id, e.org_id, e.campaign_id, e.lead_id, e.next_step_position, e.next_due_at
        FROM enrollments e
        JOIN campaigns c ON c.id = e.campaign_id
        WHERE e.status = 'active' AND e.next_due_at IS NOT NULL AND e.next_due_at <= :now
          AND c.status = 'active'
        ORDER BY e.next_due_at
        LIMIT :batch
        FOR UPDATE OF e SKIP LOCKED
    ), stepped AS (
        SELECT d.*, s.id AS step_id, s.channel
        FROM due d
        LEFT JOIN campaign_steps s ON s.campaign_id = d.campaign_id AND s.position = d.next_step_position
    ), inserted AS (
        INSERT INTO messages (id, org_id, enrollment_id, step_id, campaign_id, lead_id, channel, status,
                              attempt, due_at, created_at, updated_at)
        SELECT gen_random_uuid(), org_id, id, step_id, campaign_id, lead_id, channel, 'queued', 0,
               next_due_at, :now, :now
        FROM stepped WHERE step_id IS NOT NULL
        ON CONFLICT (enrollment_id, step_id) DO NOTHING
        RETURNING id, channel
    ), advanced AS (
        UPDATE enrollments e
        SET next_due_at = NULL,
            status = CASE WHEN st.step_id IS NULL THEN 'completed' ELSE e.status END,
            completed_at = CASE WHEN st.step_id IS NULL THEN :now ELSE e.completed_at END,
            updated_at = :now
        FROM stepped st WHERE e.id = st.id
        RETURNING e.id
    )
    SELECT id, channel, (SELECT count(*) FROM advanced) AS claimed FROM inserted
    """
)

DISPATCH_DUE = sa.text(
    """
    UPDATE messages m
    SET status = 'queued', next_attempt_at = NULL, hold_reason = NULL, updated_at = :now
    WHERE m.id IN (
        SELECT id FROM messages
        WHERE status IN ('queued', 'held') AND next_attempt_at IS NOT NULL AND next_attempt_at <= :now
        ORDER BY next_attempt_at
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    RETURNING m.id, m.channel
    """
)

STALE = sa.text(
    """
    SELECT id, channel, status, updated_at FROM messages
    WHERE (status IN ('queued', 'rendering') AND next_attempt_at IS NULL AND updated_at < :cutoff)
       OR (status = 'sending' AND next_attempt_at < :now)
    ORDER BY updated_at
    LIMIT :batch
    """
)

TOUCH = sa.text("UPDATE messages SET updated_at = :now WHERE id = ANY(:ids) AND status IN ('queued', 'rendering')")

LOAD = sa.text(
    """
    SELECT m.id, m.org_id, m.enrollment_id, m.step_id, m.campaign_id, m.lead_id, m.channel, m.status,
           m.attempt, m.next_attempt_at, m.subject AS frozen_subject, m.body AS frozen_body,
           e.status AS enrollment_status, e.next_step_position,
           c.status AS campaign_status, c.timezone AS campaign_timezone, c.send_window, c.stop_rules, c.ai,
           c.pacing_per_day,
           s.position, s.subject_template, s.body_template, s.sms_template, s.script_template,
           s.audio_url AS step_audio_url, s.ai_instructions,
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
           snd.audio_url AS sender_audio_url,
           tw.account_sid AS twilio_sid, tw.secret_encrypted AS twilio_secret,
           oa.secret_encrypted AS openai_secret,
           p.content AS cached_content, p.source AS cached_source,
           (SELECT array_agg(DISTINCT ev.type) FROM message_events ev
             WHERE ev.campaign_id = m.campaign_id AND ev.lead_id = m.lead_id
               AND ev.type IN ('replied', 'unsubscribed', 'bounced', 'clicked')) AS stop_events
    FROM messages m
    JOIN enrollments e ON e.id = m.enrollment_id
    JOIN campaigns c ON c.id = m.campaign_id
    JOIN campaign_steps s ON s.id = m.step_id
    LEFT JOIN campaign_steps ns ON ns.campaign_id = c.id AND ns.position = s.position + 1
    JOIN leads l ON l.id = m.lead_id
    JOIN brands b ON b.id = c.brand_id
    LEFT JOIN LATERAL (
        SELECT * FROM senders x
        WHERE x.brand_id = b.id
          AND x.kind = CASE m.channel WHEN 'email' THEN 'email' WHEN 'sms' THEN 'sms' ELSE 'voice' END
        ORDER BY x.verified_at IS NULL, x.created_at, x.id
        LIMIT 1
    ) snd ON true
    LEFT JOIN provider_credentials tw ON tw.org_id = m.org_id AND tw.provider = 'twilio'
    LEFT JOIN provider_credentials oa ON oa.org_id = m.org_id AND oa.provider = 'openai'
    LEFT JOIN personalizations p ON p.enrollment_id = m.enrollment_id AND p.step_id = m.step_id
                                 AND p.prompt_version = :prompt_version
    WHERE m.id = :id
    """
)

CLAIM = sa.text(
    """
    UPDATE messages
    SET status = 'sending', attempt = attempt + 1, next_attempt_at = :lease, subject = :subject, body = :body,
        hold_reason = NULL, updated_at = :now
    WHERE id = :id AND status IN ('queued', 'rendering')
    RETURNING attempt
    """
)

MARK_UNKNOWN_IF_SENDING = sa.text(
    """
    UPDATE messages
    SET status = 'unknown', error_code = :code, error_detail = :detail, next_attempt_at = NULL, updated_at = :now
    WHERE id = :id AND status = 'sending' AND attempt = :attempt
    RETURNING id
    """
)

RECORD = sa.text(
    """
    UPDATE messages
    SET status = CAST(:status AS varchar), provider_message_id = COALESCE(:provider_id, provider_message_id),
        sent_at = CASE WHEN CAST(:status AS varchar) = 'sent' THEN :now ELSE sent_at END,
        error_code = :code, error_detail = :detail, next_attempt_at = :next_attempt_at, hold_reason = NULL,
        updated_at = :now
    WHERE id = :id AND attempt = :attempt AND status IN ('sending', 'unknown')
    RETURNING id
    """
)

SET_STATE = sa.text(
    """
    UPDATE messages
    SET status = :status, hold_reason = :reason, next_attempt_at = :next_attempt_at, updated_at = :now
    WHERE id = :id AND status IN ('queued', 'rendering', 'held')
    RETURNING id
    """
)

ADVANCE = sa.text(
    """
    UPDATE enrollments
    SET next_step_position = CAST(:position AS integer) + 1,
        next_due_at = :next_due_at,
        status = CASE WHEN CAST(:finished AS boolean) THEN 'completed' ELSE status END,
        completed_at = CASE WHEN CAST(:finished AS boolean) THEN :now ELSE completed_at END,
        updated_at = :now
    WHERE id = :id AND next_step_position = CAST(:position AS integer) AND status IN ('active', 'paused')
    """
)

STOP = sa.text(
    """
    UPDATE enrollments SET status = 'stopped', stopped_reason = :reason, next_due_at = NULL, updated_at = :now
    WHERE id = :id AND status IN ('active', 'paused')
    """
)

INSERT_EVENT = sa.text(
    """
    INSERT INTO message_events (id, org_id, message_id, lead_id, campaign_id, type, occurred_at, data)
    VALUES (:id, :org_id, :message_id, :lead_id, :campaign_id, :type, :now, CAST(:data AS jsonb))
    """
)


def load(session: Session, message_id: uuid.UUID, prompt_version: str) -> Row[Any] | None:
    """Everything one message needs, in one round trip."""
    return session.execute(LOAD, {"id": message_id, "prompt_version": prompt_version}).first()


def event(session: Session, row: Row[Any], kind: str, now: datetime, data: str = "{}", *, message: bool = True) -> None:
    """Add one event row for ``row``'s message."""
    session.execute(
        INSERT_EVENT,
        {
            "id": uuid.uuid4(),
            "org_id": row.org_id,
            "message_id": row.id if message else None,
            "lead_id": row.lead_id,
            "campaign_id": row.campaign_id,
            "type": kind,
            "now": now,
            "data": data,
        },
    )
