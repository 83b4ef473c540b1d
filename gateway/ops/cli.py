"""Command-line entry points of the operator tooling (``sdr resolve`` and ``sdr unknown`` call them by path).

They run :mod:`libs.ledger`'s statements on a sync engine, exactly as the queue API runs them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import click

from libs import ledger
from libs.db.session import make_engine, system_session
from libs.logging import configure_logging
from libs.queue import redis_from_url
from libs.queue_stats import unknown_messages


def _line(result: ledger.Resolution) -> str:
    if result.resolved:
        return f"{result.message_id} resolved {result.outcome}: now {result.status}, enrollment {result.enrollment}"
    return f"{result.message_id} not resolved ({result.reason}): {result.detail}"


def resolve_messages(
    message_ids: Sequence[str],
    outcome: str,
    operator_email: str,
    note: str | None,
    *,
    database_url: str,
    redis_url: str,
) -> int:
    """Resolve ``unknown`` messages as the operator ``operator_email``; print one line each, return how many failed."""
    configure_logging(service="sdr")  # the decision's audit line goes to stderr, the results to stdout
    try:
        note = ledger.clean_note(note)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--note") from exc
    ids: list[uuid.UUID] = []
    bad: list[str] = []
    for raw in message_ids:
        try:
            ids.append(uuid.UUID(raw))
        except ValueError:
            bad.append(raw)
    if len(set(ids)) > ledger.MAX_BATCH:
        raise click.BadParameter(f"at most {ledger.MAX_BATCH} messages at once", param_hint="MESSAGE_ID")
    for raw in bad:
        click.echo(f"{raw} not resolved (invalid): not a message id")
    if not ids:
        return len(bad)
    engine = make_engine(database_url, pool_size=1)
    try:
        with system_session(engine) as session:
            operator = ledger.operator_by_email(session, operator_email)
            if operator is None:
                raise click.BadParameter(f"{operator_email} is not an operator.", param_hint="--operator")
            batch = ledger.resolve_sync(session, ids, ledger.Outcome(outcome), operator, note=note)
    finally:
        engine.dispose()
    redis = redis_from_url(redis_url)
    try:
        ledger.announce(redis, batch)
    finally:
        redis.close()
    for result in batch.results:
        click.echo(_line(result))
    return len(bad) + batch.refused


def list_unknown(*, database_url: str, limit: int) -> int:
    """Print the ``unknown`` messages, oldest first (at most ``limit``); return how many there are in all."""
    engine = make_engine(database_url, pool_size=1)
    try:
        with system_session(engine) as session:
            total, rows = unknown_messages(session, limit=limit)
    finally:
        engine.dispose()
    click.echo(f"{total} unknown message(s)" + (f", oldest {len(rows)} shown" if total > len(rows) else ""))
    for m in rows:
        click.echo(
            f"{m.id}  {m.channel:<9} attempt {m.attempt}  {m.error_code or '-':<24} since {m.updated_at}"
            f"  org {m.org_id}  campaign {m.campaign_id}"
        )
    return total
