"""The audit row: written in the caller's tenant transaction, visible to its organization only."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlmodel import select

from libs.db.models import Organization
from libs.db.models.inbound import InboundEvent, ReplyClassificationRecord
from libs.db.session import Database, make_engine, system_session, tenant_session
from libs.replies.classify import classify_reply
from libs.replies.record import record_classification

RECEIVED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def test_the_audit_row_is_written_and_only_its_organization_sees_it(database_url: str) -> None:
    engine = make_engine(database_url)
    a, b, event_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with system_session(engine) as s:
        s.add_all([Organization(id=a, name="A"), Organization(id=b, name="B")])
        s.flush()
        s.add(InboundEvent(id=event_id, org_id=a, source="email", dedupe_key="m-1"))
    classified = classify_reply("Out of office, back on 12/15. Urgent: ana@acme.io", received_at=RECEIVED)
    with tenant_session(engine, a) as s:
        record_classification(s, org_id=a, inbound_event_id=event_id, classified=classified)
    with tenant_session(engine, a) as s:
        row = s.exec(select(ReplyClassificationRecord)).one()
        assert row.intent == "out_of_office"
        assert row.source == "local"
        assert row.fields["not_before"] == date(2026, 12, 15).isoformat()
        assert row.fields["referral"] == {"email": "ana@acme.io"}
        assert row.model == "local-rules"
        assert row.confidence == Decimal("0.900")
        assert row.cost_usd == Decimal(0)
        assert row.inbound_event_id == event_id
    with tenant_session(engine, b) as s:
        assert s.exec(select(ReplyClassificationRecord)).all() == []
    with pytest.raises(sa.exc.DBAPIError), tenant_session(engine, b) as s:
        record_classification(s, org_id=a, inbound_event_id=event_id, classified=classified)
    engine.dispose()


async def test_the_async_tenant_session_of_a_service_writes_it_too(database_url: str) -> None:
    engine = make_engine(database_url)
    org, event_id = uuid.uuid4(), uuid.uuid4()
    with system_session(engine) as s:
        s.add(Organization(id=org, name="A"))
        s.flush()
        s.add(InboundEvent(id=event_id, org_id=org, source="twilio_sms", dedupe_key="SM1"))
    engine.dispose()
    classified = classify_reply("STOP", received_at=RECEIVED, channel="sms")
    database = Database.from_url(database_url)
    async with database.tenant(org) as session:
        record_classification(session, org_id=org, inbound_event_id=event_id, classified=classified)
    async with database.tenant(org) as session:
        row = (await session.execute(select(ReplyClassificationRecord))).scalars().one()
    await database.dispose()
    assert (row.intent, row.source, row.model, row.matched) == ("unsubscribe", "local", "libs.optout", "STOP")
