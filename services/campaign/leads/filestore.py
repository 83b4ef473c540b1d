"""Uploaded import files in PostgreSQL: stored by the API that received them, read by any worker.

No process shares a disk with another: the campaign service streams an upload to its own
scratch file (to enforce the limits as bytes arrive), then copies it here, in chunks, in the
transaction that registers the import. The worker that runs the import, on whatever host,
copies the chunks to its own scratch file and deletes them once the import has finished.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.models.leads import LeadImportFile

CHUNK_BYTES = 1024 * 1024
"""Bytes per stored chunk: large enough that a 200 MB file is 200 rows, small enough to stream."""

FILES: sa.Table = LeadImportFile.__table__  # type: ignore[attr-defined]
_INSERT = FILES.insert()
# Streamed from a server-side cursor a few chunks at a time: a 200 MB file never sits in memory.
_CHUNKS = sa.select(FILES.c.data).where(FILES.c.import_id == sa.bindparam("import_id")).order_by(FILES.c.seq)
_DROP = FILES.delete().where(FILES.c.import_id == sa.bindparam("import_id"))


async def store(session: AsyncSession, org_id: uuid.UUID, import_id: uuid.UUID, path: Path) -> int:
    """Copy the received file at ``path`` into the database as ``import_id``'s chunks; return the chunk count."""
    conn = await session.connection()
    seq = 0
    async with await anyio.open_file(path, "rb") as stream:
        while chunk := await stream.read(CHUNK_BYTES):
            await conn.execute(_INSERT, {"import_id": import_id, "seq": seq, "org_id": org_id, "data": chunk})
            seq += 1
    return seq


def fetch(conn: Connection, import_id: uuid.UUID, dest: Path) -> bool:
    """Write ``import_id``'s stored file to ``dest``; return False when nothing is stored for it."""
    found = False
    rows = conn.execute(_CHUNKS.execution_options(stream_results=True, max_row_buffer=4), {"import_id": import_id})
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as out:
        for (data,) in rows:
            out.write(data)
            found = True
    if not found:
        dest.unlink(missing_ok=True)
    return found


def drop(conn: Connection, import_id: uuid.UUID) -> None:
    """Delete ``import_id``'s stored file (the import has finished; its report lives on in rejections)."""
    conn.execute(_DROP, {"import_id": import_id})
