"""The typed row a batch works on: exactly the columns of the ledger's LOAD, each of its declared type."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import pytest
import sqlalchemy as sa
from redis import Redis

from libs.db.session import system_session
from services.worker import jobs, ledger
from services.worker.ledger import LOADED_COLUMNS, LoadedRow
from services.worker.personalize.prompt import PROMPT_VERSION
from services.worker.ticker import Ticker
from tests.services.worker.conftest import drain, messages
from tests.services.worker.factories import create_world
from tests.support.smtp import SmtpServer


def _allows(hint: Any, value: Any) -> bool:
    """Whether ``value`` is of the type ``hint`` names (its outer type for generics, any member of a union)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_allows(arg, value) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    return isinstance(value, typing.get_origin(hint) or hint)


def test_load_returns_exactly_the_fields_of_a_loaded_row_and_each_value_is_of_its_declared_type(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, channels=("email", "email"), smtp=(smtp.host, smtp.port))
    Ticker(ctx.settings, ctx.engine, redis).tick()
    drain(ctx, redis)  # the first email goes out: its content is frozen, the second step threads on it
    Ticker(ctx.settings, ctx.engine, redis).tick()
    ids = [row.id for row in messages(engine, world)]
    assert len(ids) == 2
    with system_session(engine) as session:
        result = session.execute(ledger.LOAD, {"ids": ids, "prompt_version": PROMPT_VERSION})
        assert tuple(result.keys()) == LOADED_COLUMNS
        loaded = ledger.load_many(session, ids, PROMPT_VERSION)
    hints = typing.get_type_hints(LoadedRow)
    assert set(hints) == set(LOADED_COLUMNS)
    for row in loaded:
        wrong = {name: getattr(row, name) for name in LOADED_COLUMNS if not _allows(hints[name], getattr(row, name))}
        assert wrong == {}, row.id
    first, second = sorted(loaded, key=lambda r: r.position)
    # Columns of left joins, present and absent: both sides of their declared types are met.
    assert first.cached_content is not None
    assert first.cached_source is not None
    assert first.next_step_id == second.step_id
    assert second.next_step_id is None
    assert second.thread_message_ids == [first.id]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.status = "queued"  # type: ignore[misc]


def test_a_row_without_one_of_the_columns_is_refused(engine: sa.Engine) -> None:
    columns = ", ".join(f"NULL AS {name}" for name in LOADED_COLUMNS if name != "stop_events")
    with engine.connect() as conn:
        row = conn.execute(sa.text(f"SELECT {columns}")).one()
    with pytest.raises(KeyError, match="stop_events"):
        LoadedRow.of(row)
