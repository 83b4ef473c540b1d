"""Who is enrolled in a campaign, and the enrollment's state (through ``libs.ledger``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from libs.db.base import utcnow
from libs.db.models.campaign import (
    Campaign,
    Channel,
    Enrollment,
    EnrollmentStatus,
)
from libs.ledger import enrollments as ledger
from libs.pagination import keyset
from services.campaign.campaigns.repository.base import (
    SKIPPED_EXAMPLES,
    EnrollOutcome,
    TenantRepository,
    suppressed_sql,
)


class EnrollmentRepository(TenantRepository):
    """Who is enrolled in a campaign, and the enrollment's state (through ``libs.ledger``)."""

    async def enroll(
        self,
        *,
        campaign: Campaign,
        channels: set[str],
        selector: str,
        params: dict[str, Any],
        status: EnrollmentStatus,
        schedule: bool,
        first_delay_minutes: int,
    ) -> EnrollOutcome:
        """Enroll the leads ``selector`` picks in one statement; classify and count the ones skipped.

        ``selector`` is SQL over ``leads l`` (already filtered by organization). Leads that are
        erased, suppressed on a channel the steps use, reachable by none of the steps (missing
        every step channel's address or consent), or active in another campaign of the same
        brand are skipped with a reason.
        """
        checks = ["WHEN l.status = 'erased' OR l.erased_at IS NOT NULL THEN 'erased'"]
        suppressed, suppressed_params = suppressed_sql(self.org_id, channels, self.suppression_key, "sup_")
        checks.append(f"WHEN {suppressed} THEN 'suppressed'")
        # A lead missing one channel's address or consent is still enrolled when another step can
        # reach it: the worker skips only the steps it may not receive (reason on each message).
        # It is skipped here only when no step of the campaign can reach it at all.
        unreachable = {
            Channel.EMAIL: "l.email_normalized IS NULL",
            Channel.SMS: "(l.phone IS NULL OR l.consent_sms_at IS NULL)",
            Channel.VOICEMAIL: "(l.phone IS NULL OR l.consent_voice_at IS NULL)",
        }
        reasons: list[str] = []
        if Channel.EMAIL in channels:
            reasons.append("WHEN l.email_normalized IS NULL THEN 'no_email'")
        if channels & {Channel.SMS, Channel.VOICEMAIL}:
            reasons.append("WHEN l.phone IS NULL THEN 'no_phone'")
        if Channel.SMS in channels:
            reasons.append("WHEN l.consent_sms_at IS NULL THEN 'no_sms_consent'")
        if Channel.VOICEMAIL in channels:
            reasons.append("WHEN l.consent_voice_at IS NULL THEN 'no_voicemail_consent'")
        blocked = [condition for channel, condition in unreachable.items() if channel in channels]
        if blocked:
            checks.append(f"WHEN {' AND '.join(blocked)} THEN CASE {' '.join(reasons)} END")
        # Uncorrelated IN subqueries: PostgreSQL hashes each set once instead of probing per lead.
        checks.append(
            """WHEN l.id IN (
                SELECT e.lead_id FROM enrollments e JOIN campaigns c ON c.id = e.campaign_id
                WHERE e.org_id = :org AND c.org_id = :org AND c.brand_id = :brand AND c.id <> :campaign
                  AND e.status IN ('active', 'paused')
            ) THEN 'active_in_other_campaign'"""
        )
        checks.append(
            "WHEN l.id IN (SELECT e.lead_id FROM enrollments e WHERE e.campaign_id = :campaign) THEN 'already_enrolled'"
        )
        due = "NULL::timestamptz"
        if schedule:
            # Pacing: the n-th lead waiting for its first step starts on day floor(n / pacing).
            due = "now() + make_interval(mins => :first_delay)"
            if campaign.pacing_per_day:
                due += " + make_interval(days => ((backlog.n + c.rn - 1) / :pacing)::int)"
        # Only fragments written here and compiled SQLAlchemy are interpolated; values are bound.
        sql = f"""
        WITH picked AS (
            SELECT l.id, CASE {" ".join(checks)} ELSE NULL END AS reason
            FROM leads l
            WHERE l.org_id = :org AND ({selector})
        ),
        backlog AS (
            SELECT count(*) AS n FROM enrollments
            WHERE campaign_id = :campaign AND org_id = :org AND status IN ('active', 'paused')
              AND next_step_position = 1
        ),
        chosen AS (
            SELECT id, row_number() OVER (ORDER BY id) AS rn FROM picked WHERE reason IS NULL
        ),
        inserted AS (
            INSERT INTO enrollments (id, org_id, campaign_id, lead_id, status, next_step_position, next_due_at,
                                     created_at, updated_at)
            SELECT gen_random_uuid(), :org, :campaign, c.id, :status, 1, {due}, now(), now()
            FROM chosen c CROSS JOIN backlog
            ON CONFLICT (campaign_id, lead_id) DO NOTHING
            RETURNING lead_id
        ),
        skipped AS (
            SELECT reason, id FROM picked WHERE reason IS NOT NULL
            UNION ALL
            SELECT 'already_enrolled', c.id FROM chosen c WHERE c.id NOT IN (SELECT lead_id FROM inserted)
        )
        SELECT 'enrolled' AS reason, (SELECT count(*) FROM inserted) AS n, NULL::uuid[] AS examples
        UNION ALL
        SELECT reason, count(*), (array_agg(id ORDER BY id))[1:{SKIPPED_EXAMPLES}] FROM skipped GROUP BY reason
        """  # noqa: S608
        bind = {
            **params,
            **suppressed_params,
            "org": self.org_id,
            "campaign": campaign.id,
            "brand": campaign.brand_id,
            "status": status.value,
            "first_delay": first_delay_minutes,
            "pacing": campaign.pacing_per_day or 1,
        }
        rows = (await self._sql(sa.text(sql), bind)).all()
        enrolled = 0
        skipped: dict[str, int] = {}
        examples: list[tuple[uuid.UUID, str]] = []
        for reason, n, ids in rows:
            if reason == "enrolled":
                enrolled = int(n)
            else:
                skipped[reason] = int(n)
                examples.extend((i, reason) for i in ids or [])
        return EnrollOutcome(enrolled=enrolled, skipped=skipped, examples=examples)

    async def existing_lead_ids(self, lead_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Return which of ``lead_ids`` are this organization's leads."""
        rows = await self._sql(
            sa.text("SELECT id FROM leads WHERE org_id = :org AND id = ANY(CAST(:ids AS uuid[]))"),
            {"org": self.org_id, "ids": [str(i) for i in lead_ids]},
        )
        return {r[0] for r in rows}

    async def import_exists(self, import_id: uuid.UUID) -> bool:
        """Whether the lead import is this organization's."""
        row = await self._sql(
            sa.text("SELECT 1 FROM lead_imports WHERE org_id = :org AND id = :id"),
            {"org": self.org_id, "id": import_id},
        )
        return row.first() is not None

    async def schedule_waiting(self, campaign: Campaign, first_delay_minutes: int) -> int:
        """At launch: activate enrollments not started yet and give each its first due time per pacing."""
        statement = ledger.launch_waiting(
            org_id=self.org_id,
            campaign_id=campaign.id,
            first_delay_minutes=first_delay_minutes,
            pacing_per_day=campaign.pacing_per_day,
        )
        result = await self._sql(statement)
        return int(getattr(result, "rowcount", 0) or 0)

    async def set_status(
        self,
        campaign_id: uuid.UUID,
        *,
        from_statuses: Sequence[str],
        to: EnrollmentStatus,
        reason: str | None = None,
        not_before_now: bool = False,
    ) -> int:
        """Move every enrollment of the campaign in ``from_statuses`` to ``to``; return how many."""
        statement = ledger.campaign_enrollments(
            org_id=self.org_id,
            campaign_id=campaign_id,
            from_statuses=from_statuses,
            to=to,
            reason=reason,
            not_before_now=not_before_now,
        )
        result = await self._sql(statement)
        return int(getattr(result, "rowcount", 0) or 0)

    async def stop(self, enrollment_id: uuid.UUID, *, reason: str) -> bool:
        """Stop one live enrollment of this organization; return whether it was live."""
        statement = ledger.stop_enrollment(org_id=self.org_id, enrollment_id=enrollment_id, reason=reason, now=utcnow())
        return (await self._sql(statement)).first() is not None

    async def list(
        self, campaign_id: uuid.UUID, *, limit: int, cursor: str | None, status: str | None, lead_id: uuid.UUID | None
    ) -> Sequence[Enrollment]:
        """Return ``limit + 1`` enrollments of the campaign, newest first."""
        query = select(Enrollment).where(Enrollment.org_id == self.org_id, Enrollment.campaign_id == campaign_id)
        if status:
            query = query.where(Enrollment.status == status)
        if lead_id:
            query = query.where(Enrollment.lead_id == lead_id)
        after = keyset(Enrollment, cursor)
        if after is not None:
            query = query.where(after)
        query = query.order_by(col(Enrollment.created_at).desc(), col(Enrollment.id).desc()).limit(limit + 1)
        return (await self.session.exec(query)).all()

    async def get(self, campaign_id: uuid.UUID, enrollment_id: uuid.UUID) -> Enrollment | None:
        """Return one enrollment of the campaign."""
        query = select(Enrollment).where(
            Enrollment.org_id == self.org_id, Enrollment.campaign_id == campaign_id, Enrollment.id == enrollment_id
        )
        return (await self.session.exec(query)).first()

    async def of_lead(self, lead_id: uuid.UUID) -> Sequence[tuple[Enrollment, Campaign]]:
        """Return the lead's enrollments with their campaigns, newest first."""
        query = (
            select(Enrollment, Campaign)
            .join(Campaign, col(Campaign.id) == Enrollment.campaign_id)
            .where(Enrollment.org_id == self.org_id, Enrollment.lead_id == lead_id)
            .order_by(col(Enrollment.created_at).desc())
        )
        return (await self.session.exec(query)).all()
