"""Scan the whole database and Redis for one person's email, phone and names (erasure tests).

Every text-like column of every table is found through ``information_schema``, so a table
added later is covered without changing a test; ``bytea`` is read as text, and numbers are
also matched in any punctuation ("(212) 555-0199", "+1 212 555 0199"). Redis keys and
values are scanned too, decompressed where RQ compressed them.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from redis import Redis
from sqlalchemy import Engine

from libs.db.session import system_session

NOT_TEXT = frozenset(
    {
        "uuid",
        "boolean",
        "smallint",
        "integer",
        "bigint",
        "numeric",
        "real",
        "double precision",
        "date",
        "interval",
        "timestamp with time zone",
        "timestamp without time zone",
        "time with time zone",
        "time without time zone",
    }
)
"""Column types that cannot hold a name, an address or a formatted number; every other type is scanned."""


@dataclass(frozen=True, slots=True)
class Person:
    """What identifies the person a test erases: an email, an E.164 phone (``+1...``) and names."""

    email: str
    phone: str
    first_name: str
    last_name: str

    @property
    def patterns(self) -> list[str]:
        """``LIKE`` patterns on lower-case text: the address, the E.164 number and both names."""
        return [
            f"%{self.email.lower()}%",
            f"%{self.phone}%",
            f"%{self.first_name.lower()}%",
            f"%{self.last_name.lower()}%",
        ]

    @property
    def national(self) -> str:
        """The number without its country code ``+1``: matched against digits only, so any punctuation is caught."""
        return self.phone[2:]

    @property
    def needles(self) -> list[bytes]:
        """Lower-case byte strings a Redis key or value must not contain."""
        return [
            self.email.lower().encode(),
            self.national.encode(),
            self.first_name.lower().encode(),
            self.last_name.lower().encode(),
        ]


def scan_database(engine: Engine, person: Person, *, tables: Iterable[str] = ()) -> dict[str, list[str]]:
    """Return ``{table: [column, ...]}`` of every column whose values hold the person's email, phone or names.

    ``tables`` must all exist (proves the scan sees the tables a test means it to see).
    """
    found: dict[str, list[str]] = {}
    with system_session(engine) as session:
        conn = session.connection()
        columns = conn.execute(
            sa.text(
                """
                SELECT c.table_name, c.column_name, c.data_type
                FROM information_schema.columns c
                JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
                WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
                ORDER BY c.table_name, c.column_name
                """
            )
        ).all()
        assert {c.table_name for c in columns} >= set(tables)
        quote = conn.dialect.identifier_preparer.quote
        for table, column, data_type in columns:
            if data_type in NOT_TEXT:
                continue
            name = quote(column)
            value = f"encode({name}, 'escape')" if data_type == "bytea" else f"CAST({name} AS text)"
            hits = conn.execute(
                sa.text(
                    f"SELECT count(*) FROM {quote(table)} WHERE lower({value}) LIKE ANY(CAST(:patterns AS text[])) "
                    f"OR regexp_replace({value}, '[^0-9]', '', 'g') LIKE :national"
                ),
                {"patterns": person.patterns, "national": f"%{person.national}%"},
            ).scalar_one()
            if hits:
                found.setdefault(table, []).append(column)
    return found


def _redis_values(redis: Redis) -> Iterator[bytes]:
    for key in redis.scan_iter(count=500):
        yield key
        kind = redis.type(key)
        if kind == b"string":
            values: list[Any] = [redis.get(key)]
        elif kind == b"hash":
            values = [v for pair in redis.hgetall(key).items() for v in pair]
        elif kind == b"list":
            values = list(redis.lrange(key, 0, -1))
        elif kind == b"set":
            values = list(redis.smembers(key))
        elif kind == b"zset":
            values = list(redis.zrange(key, 0, -1))
        elif kind == b"stream":
            values = [v for _, entry in redis.xrange(key) for pair in entry.items() for v in pair]
        else:
            values = []
        for value in values:
            if isinstance(value, bytes):
                yield value
                with contextlib.suppress(zlib.error):  # RQ stores job data compressed
                    yield zlib.decompress(value)


def scan_redis(redis: Redis, person: Person) -> list[bytes]:
    """Every Redis key or value (decompressed when RQ compressed it) holding the person's data."""
    needles = person.needles
    return [v[:200] for v in _redis_values(redis) if any(n in v.lower() for n in needles)]


def leaked(text: str, person: Person) -> list[str]:
    """Which of the person's address, number (national digits) and names appear in ``text`` (a log, a body)."""
    lowered = text.lower()
    return [
        n
        for n in (person.email.lower(), person.national, person.first_name.lower(), person.last_name.lower())
        if n in lowered
    ]
