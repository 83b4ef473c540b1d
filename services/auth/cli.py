"""Command-line entry points of the auth box (``sdr create-operator EMAIL`` calls them by path)."""

from __future__ import annotations

import asyncio

import click

from libs.db.session import Database
from libs.dev.edge import BadValue
from services.auth.app import build_context
from services.auth.schemas import canonical_email
from services.auth.service import make_operator
from services.auth.settings import AuthSettings
from services.auth.signing import rotate_signing_key


async def _create_operator(settings: AuthSettings, email: str) -> str:
    database = Database.from_url(settings.database_url, pool_size=1)
    try:
        async with database.system() as session:
            user, token = await make_operator(session, email=email, invite_ttl=settings.invite_ttl)
    finally:
        await database.dispose()
    if token is None:
        return f"{user.email} is now an operator (their next token carries the operator flag)."
    hours = settings.invite_ttl // 3600
    return (
        f"Created operator {user.email}.\n"
        f"One-time invite token (valid {hours} h, shown only now): {token}\n"
        "Set a password with POST /api/auth/invites/accept "
        '{"token": "<the token>", "password": "<at least 12 characters>"}.'
    )


def create_operator(email: str, settings: AuthSettings | None = None) -> None:
    """Create or flag a platform operator; a new one gets a one-time invite to set a password."""
    # Checked before connecting, so that a typo is named even when the database is down.
    try:
        canonical_email(email)
    except ValueError as exc:
        raise BadValue(f"invalid EMAIL {email!r}: {exc}", "give an address like ops@example.com") from None
    click.echo(asyncio.run(_create_operator(settings or AuthSettings(), email)))


async def _rotate(settings: AuthSettings) -> str:
    database = Database.from_url(settings.database_url, pool_size=1)
    try:
        return (await rotate_signing_key(database, build_context(settings).keys)).kid
    finally:
        await database.dispose()


def rotate_signing_keys(settings: AuthSettings | None = None) -> None:
    """Make a new key the token signer; older keys stay published until their tokens expire."""
    click.echo(f"New signing key: {asyncio.run(_rotate(settings or AuthSettings()))}")
