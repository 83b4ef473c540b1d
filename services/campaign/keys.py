"""The erasure-hash key of the campaign service's apps, loaded once per app from the database."""

from __future__ import annotations

from litestar.datastructures import State

from libs.suppression import stored_hash_key_async


async def suppression_key(state: State) -> bytes:
    """Return the app's erasure-hash key (``libs.suppression.load_hash_key``), loading it on first use."""
    key: bytes | None = state.get("suppression_key")
    if key is None:
        key = await stored_hash_key_async(state.db.engine, state.settings)
        state.suppression_key = key
    return key
