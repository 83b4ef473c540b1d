"""Migration 0014: the dead ``rendering`` message status is gone from the rows and from the CHECK constraint."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from libs.db.migrate import alembic_config, upgrade
from libs.db.session import make_engine
from tests.support.servers import create_database, drop_database

INSERT = sa.text(
    """
    INSERT INTO messages (id, org_id, enrollment_id, step_id, campaign_id, lead_id, channel, status,
                          created_at, updated_at)
    VALUES (:id, gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(),
            'email', :status, now(), now())
    """
)


@pytest.fixture
def fresh_url(pg_server_url: str) -> Iterator[str]:
    """An empty database the test migrates itself."""
    url = create_database(pg_server_url, prefix="tw_mig")
    yield url
    drop_database(pg_server_url, url)


def _insert(engine: sa.Engine, status: str) -> uuid.UUID:
    """A bare messages row: foreign keys are not checked under the replica role (CHECK constraints are)."""
    message_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        conn.execute(INSERT, {"id": message_id, "status": status})
    return message_id


def _status(engine: sa.Engine, message_id: uuid.UUID) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.text("SELECT status FROM messages WHERE id = :id"), {"id": message_id}).scalar())


def test_rendering_rows_become_queued_and_the_constraint_refuses_rendering(fresh_url: str) -> None:
    from alembic import command

    upgrade(fresh_url, "0013")
    engine = make_engine(fresh_url)
    try:
        rendering = _insert(engine, "rendering")
        sending = _insert(engine, "sending")

        upgrade(fresh_url, "0014")
        assert _status(engine, rendering) == "queued"
        assert _status(engine, sending) == "sending"
        with pytest.raises(sa.exc.IntegrityError, match="ck_messages_status"):
            _insert(engine, "rendering")
        _insert(engine, "queued")  # every other state is still accepted

        command.downgrade(alembic_config(fresh_url), "0013")
        restored = _insert(engine, "rendering")  # the downgrade widens the constraint again
        assert _status(engine, restored) == "rendering"
    finally:
        engine.dispose()
