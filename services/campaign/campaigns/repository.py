"""Every query of campaigns, steps, enrollments and the ledger; each one filters by organization."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.base import utcnow
from libs.db.models.campaign import (
    Campaign,
    CampaignStep,
    Channel,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageEvent,
)
from libs.db.models.worker import Personalization
from libs.ledger import enrollments as ledger
from libs.pagination import keyset
from libs.suppression import LEADS, suppressed_clause

SKIPPED_EXAMPLES = 100


@dataclass(frozen=True, slots=True)
class LeadRow:
    """The lead columns campaigns read (the leads box owns the table)."""

    id: uuid.UUID
    email_normalized: str | None
    phone: str | None
    timezone: str | None
    status: str
    consent_sms_at: datetime | None
    consent_voice_at: datetime | None


@dataclass(frozen=True, slots=True)
class EnrollOutcome:
    """Counts of one set-based enrollment."""

    enrolled: int
    skipped: dict[str, int]
    examples: list[tuple[uuid.UUID, str]]


LEADS_L = LEADS.alias("l")
"""The leads table as ``l``: the alias every raw statement here reads leads through."""
_DIALECT = postgresql.dialect(paramstyle="named")  # type: ignore[no-untyped-call]
_CAST = re.compile(r":(\w+)::([A-Z][A-Z_]*(?: VARYING| PRECISION)?(?:\(\d+\))?(?:\[\])?)")


def suppressed_sql(org_id: uuid.UUID, channels: Iterable[str], key: bytes, prefix: str) -> tuple[str, dict[str, Any]]:
    """SQL (over ``leads l``) true when the lead is suppressed on any of ``channels``, with its parameters.

    The condition is ``libs.suppression.suppressed_clause``, the one the worker checks at send
    time, compiled here so it can sit inside the set-based enrollment statement.
    """
    clause = sa.or_(*(suppressed_clause(org_id=org_id, channel=c, key=key, leads=LEADS_L) for c in sorted(channels)))
    compiled = clause.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    # sa.text reads ":name::TYPE" as no bind at all; spell the driver's casts as CAST(:name AS TYPE).
    sql = _CAST.sub(r"CAST(:\1 AS \2)", str(compiled))
    params: dict[str, Any] = {}
    for name in sorted(compiled.params, key=len, reverse=True):
        sql = sql.replace(f":{name}", f":{prefix}{name}")
        params[f"{prefix}{name}"] = compiled.params[name]
    return sql, params


class CampaignRepository:
    """Queries for one organization's campaigns and everything under them."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID, *, suppression_key: bytes) -> None:
        self.session = session
        self.org_id = org_id
        self.suppression_key = suppression_key

    async def _sql(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        """Flush pending ORM changes, then run a Core statement on the transaction's connection."""
        await self.session.flush()
        conn = await self.session.connection()
        return await conn.execute(statement, params or {})

    # --- campaigns ------------------------------------------------------------------------------

    async def get(self, campaign_id: uuid.UUID, *, for_update: bool = False) -> Campaign | None:
        """Return the campaign, optionally locked for the rest of the transaction."""
        query = select(Campaign).where(Campaign.id == campaign_id, Campaign.org_id == self.org_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def list(
        self,
        *,
        limit: int,
        cursor: str | None,
        status: str | None = None,
        brand_id: uuid.UUID | None = None,
        name: str | None = None,
    ) -> Sequence[Campaign]:
        """Return ``limit + 1`` campaigns, newest first, after ``cursor``."""
        query = select(Campaign).where(Campaign.org_id == self.org_id)
        if status:
            query = query.where(Campaign.status == status)
        if brand_id:
            query = query.where(Campaign.brand_id == brand_id)
        if name:
            escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(col(Campaign.name).ilike(f"%{escaped}%", escape="\\"))
        after = keyset(Campaign, cursor)
        if after is not None:
            query = query.where(after)
        query = query.order_by(col(Campaign.created_at).desc(), col(Campaign.id).desc()).limit(limit + 1)
        return (await self.session.exec(query)).all()

    async def add(self, row: Any) -> None:
        """Stage a new row and flush it."""
        self.session.add(row)
        await self.session.flush()

    async def delete(self, row: Any) -> None:
        """Delete a row."""
        await self.session.delete(row)
        await self.session.flush()

    async def brand(self, brand_id: uuid.UUID) -> dict[str, Any] | None:
        """Return the brand's id, time zone and archive time, if it is this organization's."""
        row = (
            await self._sql(
                sa.text("SELECT id, timezone, archived_at FROM brands WHERE id = :id AND org_id = :org"),
                {"id": brand_id, "org": self.org_id},
            )
        ).first()
        return dict(row._mapping) if row else None

    async def has_messages(self, campaign_id: uuid.UUID) -> bool:
        """Whether any message of the campaign exists."""
        query = select(Message.id).where(Message.org_id == self.org_id, Message.campaign_id == campaign_id).limit(1)
        return (await self.session.exec(query)).first() is not None

    async def has_enrollments(self, campaign_id: uuid.UUID) -> bool:
        """Whether any lead is enrolled in the campaign."""
        query = (
            select(Enrollment.id)
            .where(Enrollment.org_id == self.org_id, Enrollment.campaign_id == campaign_id)
            .limit(1)
        )
        return (await self.session.exec(query)).first() is not None

    # --- steps ------------------------------------------------------------------------------------

    async def steps(self, campaign_id: uuid.UUID) -> Sequence[CampaignStep]:
        """Return the campaign's steps in order."""
        query = (
            select(CampaignStep)
            .where(CampaignStep.org_id == self.org_id, CampaignStep.campaign_id == campaign_id)
            .order_by(col(CampaignStep.position))
            .execution_options(populate_existing=True)
        )
        return (await self.session.exec(query)).all()

    async def step(self, campaign_id: uuid.UUID, step_id: uuid.UUID) -> CampaignStep | None:
        """Return one step of the campaign."""
        query = (
            select(CampaignStep)
            .where(
                CampaignStep.org_id == self.org_id,
                CampaignStep.campaign_id == campaign_id,
                CampaignStep.id == step_id,
            )
            .execution_options(populate_existing=True)
        )
        return (await self.session.exec(query)).first()

    async def step_has_messages(self, step_id: uuid.UUID) -> bool:
        """Whether any message was written for the step."""
        query = select(Message.id).where(Message.org_id == self.org_id, Message.step_id == step_id).limit(1)
        return (await self.session.exec(query)).first() is not None

    async def set_positions(self, campaign_id: uuid.UUID, order: Sequence[uuid.UUID]) -> None:
        """Renumber the campaign's steps 1..n in ``order`` (two passes keep the unique key happy)."""
        params = {"org": self.org_id, "campaign": campaign_id}
        await self._sql(
            sa.text(
                "UPDATE campaign_steps SET position = position + 1000000 "
                "WHERE org_id = :org AND campaign_id = :campaign"
            ),
            params,
        )
        await self._sql(
            sa.text(
                "UPDATE campaign_steps s SET position = o.ordinality, updated_at = now() "
                "FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS o(id, ordinality) "
                "WHERE s.id = o.id AND s.org_id = :org AND s.campaign_id = :campaign"
            ),
            {**params, "ids": [str(i) for i in order]},
        )
        await self.session.flush()

    # --- enrollments ------------------------------------------------------------------------------

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

    async def set_enrollment_status(
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

    async def stop_enrollment(self, enrollment_id: uuid.UUID, *, reason: str) -> bool:
        """Stop one live enrollment of this organization; return whether it was live."""
        statement = ledger.stop_enrollment(org_id=self.org_id, enrollment_id=enrollment_id, reason=reason, now=utcnow())
        return (await self._sql(statement)).first() is not None

    async def enrollments(
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

    async def enrollment(self, campaign_id: uuid.UUID, enrollment_id: uuid.UUID) -> Enrollment | None:
        """Return one enrollment of the campaign."""
        query = select(Enrollment).where(
            Enrollment.org_id == self.org_id, Enrollment.campaign_id == campaign_id, Enrollment.id == enrollment_id
        )
        return (await self.session.exec(query)).first()

    # --- leads (read only) ------------------------------------------------------------------------

    async def lead(self, lead_id: uuid.UUID) -> LeadRow | None:
        """Return the lead columns campaigns need."""
        row = (
            await self._sql(
                sa.text(
                    "SELECT id, email_normalized, phone, timezone, status, consent_sms_at, consent_voice_at "
                    "FROM leads WHERE org_id = :org AND id = :id"
                ),
                {"org": self.org_id, "id": lead_id},
            )
        ).first()
        return LeadRow(**row._mapping) if row else None

    async def lead_suppressed_on(self, lead_id: uuid.UUID, channel: str) -> bool:
        """Whether the lead is on the suppression list for ``channel``."""
        suppressed, params = suppressed_sql(self.org_id, [channel], self.suppression_key, "sup_")
        row = await self._sql(
            sa.text(f"SELECT {suppressed} FROM leads l WHERE l.org_id = :org AND l.id = :id"),  # noqa: S608
            {**params, "org": self.org_id, "id": lead_id},
        )
        return bool(row.scalar())

    async def lead_enrollments(self, lead_id: uuid.UUID) -> Sequence[tuple[Enrollment, Campaign]]:
        """Return the lead's enrollments with their campaigns, newest first."""
        query = (
            select(Enrollment, Campaign)
            .join(Campaign, col(Campaign.id) == Enrollment.campaign_id)
            .where(Enrollment.org_id == self.org_id, Enrollment.lead_id == lead_id)
            .order_by(col(Enrollment.created_at).desc())
        )
        return (await self.session.exec(query)).all()

    # --- messages ---------------------------------------------------------------------------------

    async def messages(
        self,
        *,
        limit: int,
        cursor: str | None,
        campaign_id: uuid.UUID | None = None,
        lead_id: uuid.UUID | None = None,
        step_id: uuid.UUID | None = None,
        status: str | None = None,
        channel: str | None = None,
    ) -> Sequence[Message]:
        """Return ``limit + 1`` messages, newest first."""
        query = select(Message).where(Message.org_id == self.org_id)
        for column, value in (
            (Message.campaign_id, campaign_id),
            (Message.lead_id, lead_id),
            (Message.step_id, step_id),
            (Message.status, status),
            (Message.channel, channel),
        ):
            if value is not None:
                query = query.where(column == value)
        after = keyset(Message, cursor)
        if after is not None:
            query = query.where(after)
        query = query.order_by(col(Message.created_at).desc(), col(Message.id).desc()).limit(limit + 1)
        return (await self.session.exec(query)).all()

    async def message(self, message_id: uuid.UUID) -> Message | None:
        """Return one message."""
        query = select(Message).where(Message.org_id == self.org_id, Message.id == message_id)
        return (await self.session.exec(query)).first()

    async def personalization(self, message_id: uuid.UUID) -> Personalization | None:
        """Return the newest record of how the worker wrote ``message_id``'s content, if any."""
        query = (
            select(Personalization)
            .where(Personalization.org_id == self.org_id, Personalization.message_id == message_id)
            .order_by(col(Personalization.created_at).desc())
            .limit(1)
        )
        return (await self.session.exec(query)).first()

    async def events_of_messages(self, message_ids: Sequence[uuid.UUID]) -> Sequence[MessageEvent]:
        """Return the events of ``message_ids``, oldest first."""
        if not message_ids:
            return []
        query = (
            select(MessageEvent)
            .where(MessageEvent.org_id == self.org_id, col(MessageEvent.message_id).in_(message_ids))
            .order_by(col(MessageEvent.occurred_at), col(MessageEvent.id))
        )
        return (await self.session.exec(query)).all()

    async def lead_messages(self, lead_id: uuid.UUID, limit: int = 500) -> Sequence[Message]:
        """Return the lead's messages, oldest first (at most ``limit``)."""
        query = (
            select(Message)
            .where(Message.org_id == self.org_id, Message.lead_id == lead_id)
            .order_by(col(Message.created_at), col(Message.id))
            .limit(limit)
        )
        return (await self.session.exec(query)).all()

    async def lead_events(self, lead_id: uuid.UUID, limit: int = 2000) -> Sequence[MessageEvent]:
        """Return the lead's events, oldest first (at most ``limit``)."""
        query = (
            select(MessageEvent)
            .where(MessageEvent.org_id == self.org_id, MessageEvent.lead_id == lead_id)
            .order_by(col(MessageEvent.occurred_at), col(MessageEvent.id))
            .limit(limit)
        )
        return (await self.session.exec(query)).all()

    async def message_for(self, enrollment_id: uuid.UUID, step_id: uuid.UUID) -> Message | None:
        """Return the ledger row of an enrollment's step, if written."""
        query = select(Message).where(
            Message.org_id == self.org_id, Message.enrollment_id == enrollment_id, Message.step_id == step_id
        )
        return (await self.session.exec(query)).first()

    # --- message preview ------------------------------------------------------------------------

    async def preview_lead(self, lead_id: uuid.UUID) -> dict[str, Any] | None:
        """Return the lead columns a message is written from (the ones the worker reads), if this org's."""
        row = (
            await self._sql(
                sa.text(
                    "SELECT id, first_name, last_name, company, title, timezone, email, phone, custom_fields "
                    "FROM leads WHERE org_id = :org AND id = :id"
                ),
                {"org": self.org_id, "id": lead_id},
            )
        ).first()
        return dict(row._mapping) if row else None

    async def preview_brand(self, brand_id: uuid.UUID, channel: str) -> dict[str, Any] | None:
        """Return the brand columns a message is written from, the channel's sender name and whether OpenAI is set.

        The sender is the one the worker picks for the channel (verified first, then the oldest).
        """
        row = (
            await self._sql(
                sa.text(
                    "SELECT b.name, b.website, b.description, b.value_proposition, b.target_audience, "
                    "b.tone_of_voice, b.proof_points, b.forbidden_claims, b.email_signature, b.sms_signoff, "
                    "b.postal_address, b.opt_out_email, b.opt_out_sms, b.opt_out_voicemail, "
                    "(SELECT x.from_name FROM senders x WHERE x.org_id = b.org_id AND x.brand_id = b.id "
                    "AND x.kind = :kind ORDER BY x.verified_at IS NULL, x.created_at, x.id LIMIT 1) AS from_name, "
                    "EXISTS (SELECT 1 FROM provider_credentials oa WHERE oa.org_id = b.org_id "
                    "AND oa.provider = 'openai') AS has_openai "
                    "FROM brands b WHERE b.id = :id AND b.org_id = :org"
                ),
                {"id": brand_id, "org": self.org_id, "kind": "voice" if channel == "voicemail" else channel},
            )
        ).first()
        return dict(row._mapping) if row else None


def touch(row: Any) -> None:
    """Set ``updated_at`` (and bump ``version`` where there is one)."""
    row.updated_at = utcnow()
    if hasattr(row, "version"):
        row.version += 1
