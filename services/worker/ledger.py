"""Every statement on the message ledger the worker and the ticker run; conditional updates only.

State machine: queued -> sending -> sent | failed | bounced | unknown, plus held
(waiting for a time, with ``next_attempt_at``) and skipped. The worker claims straight from
``queued`` (or a due ``held``) to ``sending``; ``rendering`` is not used by it any more. While
a row is ``sending`` its ``next_attempt_at`` is the claim's lease, which the claiming process
renews while it lives: past it, the claimer is presumed dead and the row becomes ``unknown``
(never resent). A late record of the real outcome by a claimer that was only slow still wins
(the record accepts ``unknown`` of the same attempt).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
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

TOUCH = sa.text("UPDATE messages SET updated_at = :now WHERE id = ANY(:ids) AND status IN ('queued', 'rendering')")

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
           e.status AS enrollment_status, e.next_step_position,
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
           snd.audio_url AS sender_audio_url,
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

SETTLE = sa.text(
    """
    WITH v AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS varchar[]), CAST(:reasons AS varchar[]),
                             CAST(:next_at AS timestamptz[]), CAST(:event_ids AS uuid[]), CAST(:event_data AS text[]),
                             CAST(:actions AS varchar[]), CAST(:positions AS integer[]), CAST(:due AS timestamptz[]))
            AS v(id, status, reason, next_at, event_id, event_data, action, position, due)
    ), settled AS (
        UPDATE messages m
        SET status = v.status, hold_reason = v.reason, next_attempt_at = v.next_at, updated_at = :now
        FROM v
        WHERE m.id = v.id AND m.status IN ('queued', 'held')
        RETURNING m.id, m.org_id, m.lead_id, m.campaign_id, m.enrollment_id, v.status, v.reason, v.event_id,
                  v.event_data, v.action, v.position, v.due
    ), held_events AS (
        INSERT INTO message_events (id, org_id, message_id, lead_id, campaign_id, type, occurred_at, data)
        SELECT event_id, org_id, id, lead_id, campaign_id, status, :now, CAST(event_data AS jsonb)
        FROM settled WHERE status IN ('held', 'failed')
    ), advanced AS (
        UPDATE enrollments e
        SET next_step_position = st.position + 1,
            next_due_at = st.due,
            status = CASE WHEN st.action = 'complete' THEN 'completed' ELSE e.status END,
            completed_at = CASE WHEN st.action = 'complete' THEN :now ELSE e.completed_at END,
            updated_at = :now
        FROM settled st
        WHERE e.id = st.enrollment_id AND st.action IN ('advance', 'complete')
          AND e.next_step_position = st.position AND e.status IN ('active', 'paused')
    ), stopped AS (
        UPDATE enrollments e
        SET status = 'stopped', stopped_reason = substr(st.reason, 9), next_due_at = NULL, updated_at = :now
        FROM settled st
        WHERE e.id = st.enrollment_id AND st.action = 'stop' AND e.status IN ('active', 'paused')
    )
    SELECT id, status FROM settled
    """
)
"""Skip, hold or fail many messages at once: state, ``held``/``failed`` events, the enrollment advanced or stopped."""

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

STEP = sa.text(
    """
    WITH recorded AS (
        UPDATE messages
        SET status = CAST(:r_status AS varchar),
            provider_message_id = COALESCE(CAST(:r_provider AS varchar), provider_message_id),
            sent_at = CASE WHEN CAST(:r_status AS varchar) = 'sent' THEN :now ELSE sent_at END,
            error_code = CAST(:r_code AS varchar), error_detail = CAST(:r_detail AS text),
            next_attempt_at = CAST(:r_next_attempt AS timestamptz), hold_reason = NULL, updated_at = :now
        WHERE id = CAST(:r_id AS uuid) AND attempt = CAST(:r_attempt AS integer) AND status IN ('sending', 'unknown')
        RETURNING id, org_id, lead_id, campaign_id, enrollment_id
    ), recorded_event AS (
        INSERT INTO message_events (id, org_id, message_id, lead_id, campaign_id, type, occurred_at, data)
        SELECT CAST(:r_event_id AS uuid), org_id, id, lead_id, campaign_id, CAST(:r_event AS varchar), :now,
               CAST(:r_event_data AS jsonb)
        FROM recorded WHERE CAST(:r_event AS varchar) IS NOT NULL
        RETURNING id, org_id
    ), advanced AS (
        UPDATE enrollments e
        SET next_step_position = CAST(:r_position AS integer) + 1,
            next_due_at = CAST(:r_due AS timestamptz),
            status = CASE WHEN CAST(:r_action AS varchar) = 'complete' THEN 'completed' ELSE e.status END,
            completed_at = CASE WHEN CAST(:r_action AS varchar) = 'complete' THEN :now ELSE e.completed_at END,
            updated_at = :now
        FROM recorded r
        WHERE e.id = r.enrollment_id AND CAST(:r_action AS varchar) IN ('advance', 'complete')
          AND e.next_step_position = CAST(:r_position AS integer) AND e.status IN ('active', 'paused')
    ), claimed AS (
        UPDATE messages m
        SET status = 'sending', attempt = m.attempt + 1, next_attempt_at = :c_lease,
            subject = CAST(:c_subject AS text), body = CAST(:c_body AS text), variant = CAST(:c_variant AS varchar),
            hold_reason = NULL, updated_at = :now
        WHERE m.id = CAST(:c_id AS uuid) AND m.status IN ('queued', 'held')
          AND COALESCE(m.next_attempt_at, '-infinity') <= :now
          AND EXISTS (SELECT 1 FROM enrollments e JOIN campaigns c ON c.id = e.campaign_id
                      WHERE e.id = m.enrollment_id AND e.status = 'active' AND c.status = 'active')
        RETURNING m.id, m.org_id, m.attempt
    ), links AS (
        INSERT INTO message_links (message_id, position, org_id, url, created_at)
        SELECT c.id, u.n - 1, c.org_id, u.url, :now
        FROM claimed c, unnest(CAST(:c_urls AS text[])) WITH ORDINALITY AS u(url, n)
        ON CONFLICT (message_id, position) DO NOTHING
    )
    SELECT (SELECT count(*) FROM recorded) AS recorded,
           (SELECT attempt FROM claimed) AS claimed_attempt,
           (SELECT EXISTS (SELECT 1 FROM webhook_endpoints w, recorded_event ev
                           WHERE w.org_id = ev.org_id AND w.active AND w.event_types ? CAST(:r_event AS varchar)))
               AS webhook
    """
)
"""One durable step of a batch: record the previous send (ledger, event, next step) and claim the next message.

Either half may be empty (NULL ids). The claim takes only ``queued`` or due ``held`` rows of a
live enrollment and campaign, so a message the inbound side skipped (reply, opt-out) or one
another execution holds can never be claimed; the tracked links go in with the frozen body.
"""

RENEW = sa.text(
    """
    UPDATE messages m SET next_attempt_at = :lease
    FROM unnest(CAST(:ids AS uuid[]), CAST(:attempts AS integer[])) AS v(id, attempt)
    WHERE m.id = v.id AND m.attempt = v.attempt AND m.status = 'sending'
    RETURNING m.id
    """
)
"""Extend the leases of claims the calling process still holds (same attempt, still ``sending``)."""

LOST_CLAIMS = sa.text(
    """
    UPDATE messages m
    SET status = 'unknown', error_code = 'claim_lost', error_detail = 'found in sending after its claim expired',
        next_attempt_at = NULL, hold_reason = NULL, updated_at = :now
    WHERE m.id IN (
        SELECT id FROM messages
        WHERE status = 'sending' AND next_attempt_at < :now
        ORDER BY next_attempt_at
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    RETURNING m.id, m.org_id, m.campaign_id, m.channel
    """
)
"""Claims whose lease ran out (their holder died): ``unknown``, never resent; the enrollment stays on the step.

A claimer that was only slow still records the real outcome over it (the record accepts ``unknown``).
"""

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

RELEASE_HELD = sa.text(
    """
    UPDATE enrollments e
    SET next_step_position = v.position + 1,
        next_due_at = v.due,
        status = CASE WHEN v.action = 'complete' THEN 'completed' ELSE e.status END,
        completed_at = CASE WHEN v.action = 'complete' THEN :now ELSE e.completed_at END,
        updated_at = :now
    FROM unnest(CAST(:ids AS uuid[]), CAST(:positions AS integer[]), CAST(:actions AS varchar[]),
                CAST(:due AS timestamptz[])) AS v(id, position, action, due)
    WHERE e.id = v.id AND e.status = 'active' AND e.next_due_at IS NULL AND e.next_step_position = v.position
    RETURNING e.id
    """
)
"""Move held enrollments on past their unknown step, as a send would (only if still held on it)."""

QUEUED_OF = sa.text(
    """
    SELECT id, channel FROM messages
    WHERE id = ANY(CAST(:ids AS uuid[])) AND status IN ('queued', 'rendering') AND next_attempt_at IS NULL
    """
)
"""The messages of a dead worker's job still waiting to go (its claim, if any, runs out by its lease)."""

STOP = sa.text(
    """
    UPDATE enrollments SET status = 'stopped', stopped_reason = :reason, next_due_at = NULL, updated_at = :now
    WHERE id = :id AND status IN ('active', 'paused')
    """
)


def load_many(session: Session, message_ids: Sequence[uuid.UUID], prompt_version: str) -> list[Row[Any]]:
    """Everything a batch of messages needs, in one round trip."""
    return list(session.execute(LOAD, {"ids": list(message_ids), "prompt_version": prompt_version}))
