"""The CSV import engine: stream the file, validate rows, COPY them into staging, upsert in sets.

Each chunk of rows is one transaction: COPY into a temporary staging table, match the
staged rows to existing leads (email, else phone), update the matched ones, insert the
rest, mark the suppressed ones, COPY the rejected rows, and move the progress counters and
the checkpoint. A run that dies (worker killed) leaves the import ``running`` with every
committed chunk counted; running the job again resumes after the checkpoint, so nothing is
imported twice and nothing is lost. A session-level advisory lock keeps two runs of one
import from overlapping. Rows a chunk meets again that an earlier chunk of the same import
already wrote (``leads.import_id`` is this import) are duplicates of the file, not updates.
"""

from __future__ import annotations

import contextvars
import csv
import json
import re
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dns.resolver
import psycopg
import sqlalchemy as sa
import structlog
from sqlalchemy import Connection, Engine

from libs.db.models.leads import ImportStatus
from libs.db.session import scope_to_system, scope_to_tenant
from libs.suppression import contact_hash, suppressed_clause
from services.campaign.leads import filestore
from services.campaign.leads.contact import ContactValidator, mx_resolver
from services.campaign.leads.csvfile import LINE_TOO_LONG, FileRejected, detect_format, open_rows
from services.campaign.leads.rows import MAX_COLUMNS, ColumnMap, HeaderError, LeadRow, RowError, RowParser
from services.campaign.leads.rows import build_column_map as build_columns

log = structlog.get_logger(__name__)

MAX_REPORT_CELL = 2000
ANALYSE_FIRST = 1000
"""Inserted rows after which an import first refreshes the statistics on ``leads`` (see ``_keep_statistics``)."""
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
ERASED_REASON = "This contact asked to be erased (GDPR); the row was not imported."
DUPLICATE_REASON = "Duplicate of an earlier row of this file."

_STAGE_COLUMNS = LeadRow._fields
_CREATE_STAGE = """
CREATE TEMP TABLE lead_stage (
    row_number integer PRIMARY KEY,
    email text, email_normalized text, phone text,
    first_name text, last_name text, company text, title text,
    timezone text, timezone_inferred text, custom_fields jsonb NOT NULL,
    consent_email boolean NOT NULL, consent_sms boolean NOT NULL, consent_voice boolean NOT NULL,
    consent_source text,
    lead_id uuid, dup boolean NOT NULL DEFAULT false, suppressed boolean NOT NULL DEFAULT false
) ON COMMIT DROP
"""
STAGE = sa.table("lead_stage", sa.column("email_normalized"), sa.column("phone"), sa.column("suppressed", sa.Boolean))
_CREATE_REJECT_STAGE = """
CREATE TEMP TABLE reject_stage (row_number integer PRIMARY KEY, reason text NOT NULL, cells jsonb NOT NULL)
ON COMMIT DROP
"""
_INSERT_REJECTS = """
INSERT INTO lead_import_rejections (import_id, row_number, org_id, reason, cells)
SELECT :imp, row_number, :org, reason, cells FROM reject_stage
"""
# The matching statements look each staged row up by index (a LATERAL subquery with a LIMIT
# is planned per row): their cost follows the chunk, never the table. Left to a plain join,
# the planner hashes an organization's whole leads table for every chunk (a second per chunk
# at a million leads). Per-row lookups need statistics that know the table is not empty:
# see ``ImportRun._keep_statistics``.
_MATCH_BY_EMAIL = """
UPDATE lead_stage s SET lead_id = m.id, dup = m.import_id IS NOT DISTINCT FROM :imp
FROM lead_stage t
CROSS JOIN LATERAL (
    SELECT l.id, l.import_id FROM leads l
    WHERE l.org_id = :org AND l.email_normalized = t.email_normalized
    LIMIT 1
) m
WHERE t.email_normalized IS NOT NULL AND s.row_number = t.row_number
"""
_MATCH_BY_PHONE = """
UPDATE lead_stage s SET lead_id = m.id, dup = m.import_id IS NOT DISTINCT FROM :imp
FROM lead_stage t
CROSS JOIN LATERAL (
    SELECT first.id, first.import_id FROM (
        SELECT l.id, l.import_id, l.created_at FROM leads l
        WHERE l.org_id = :org AND l.phone = t.phone AND l.erased_at IS NULL
        OFFSET 0
    ) first
    ORDER BY first.created_at, first.id
    LIMIT 1
) m
WHERE t.email_normalized IS NULL AND t.phone IS NOT NULL AND s.row_number = t.row_number
"""
_DUP_WITHIN_CHUNK = """
UPDATE lead_stage s SET dup = true
FROM (SELECT lead_id, min(row_number) AS first_row FROM lead_stage WHERE lead_id IS NOT NULL GROUP BY lead_id) f
WHERE s.lead_id = f.lead_id AND s.row_number > f.first_row AND NOT s.dup
"""
_UPDATE = """
UPDATE leads l SET
    email = COALESCE(s.email, l.email),
    phone = COALESCE(s.phone, l.phone),
    first_name = COALESCE(s.first_name, l.first_name),
    last_name = COALESCE(s.last_name, l.last_name),
    company = COALESCE(s.company, l.company),
    title = COALESCE(s.title, l.title),
    timezone = COALESCE(s.timezone, l.timezone, s.timezone_inferred),
    custom_fields = l.custom_fields || s.custom_fields,
    consent_email_at = CASE WHEN s.consent_email THEN COALESCE(l.consent_email_at, now()) ELSE l.consent_email_at END,
    consent_sms_at = CASE WHEN s.consent_sms THEN COALESCE(l.consent_sms_at, now()) ELSE l.consent_sms_at END,
    consent_voice_at = CASE WHEN s.consent_voice THEN COALESCE(l.consent_voice_at, now()) ELSE l.consent_voice_at END,
    consent_source = CASE WHEN s.consent_email OR s.consent_sms OR s.consent_voice
        THEN COALESCE(s.consent_source, :source) ELSE l.consent_source END,
    consent_sms_source = CASE WHEN s.consent_sms AND l.consent_sms_at IS NULL
        THEN COALESCE(s.consent_source, :source) ELSE l.consent_sms_source END,
    consent_voice_source = CASE WHEN s.consent_voice AND l.consent_voice_at IS NULL
        THEN COALESCE(s.consent_source, :source) ELSE l.consent_voice_source END,
    status = CASE WHEN s.suppressed AND l.status = 'active' THEN 'suppressed' ELSE l.status END,
    import_id = :imp,
    updated_at = now()
FROM lead_stage s
WHERE s.lead_id = l.id AND NOT s.dup AND l.org_id = :org AND l.erased_at IS NULL
"""

_INSERT = """
INSERT INTO leads (
    id, org_id, email, email_normalized, phone, first_name, last_name, company, title, timezone, custom_fields,
    consent_email_at, consent_sms_at, consent_voice_at, consent_source, consent_sms_source, consent_voice_source,
    status, import_id, created_at, updated_at
)
SELECT CAST(:id_prefix || lpad(to_hex(s.row_number), 8, '0') AS uuid), :org,
    s.email, s.email_normalized, s.phone, s.first_name, s.last_name, s.company, s.title,
    COALESCE(s.timezone, s.timezone_inferred), s.custom_fields,
    CASE WHEN s.consent_email THEN now() END, CASE WHEN s.consent_sms THEN now() END,
    CASE WHEN s.consent_voice THEN now() END,
    CASE WHEN s.consent_email OR s.consent_sms OR s.consent_voice THEN COALESCE(s.consent_source, :source) END,
    CASE WHEN s.consent_sms THEN COALESCE(s.consent_source, :source) END,
    CASE WHEN s.consent_voice THEN COALESCE(s.consent_source, :source) END,
    CASE WHEN s.suppressed THEN 'suppressed' ELSE 'active' END, :imp, now(), now()
FROM lead_stage s
WHERE s.lead_id IS NULL
ORDER BY s.row_number
"""
_INSERT_RACING = _INSERT + "ON CONFLICT DO NOTHING"
"""The same insert for a chunk that met a lead written since it was matched (a concurrent write)."""
_PROGRESS = """
UPDATE lead_imports SET
    rows_read = rows_read + :read, rows_imported = rows_imported + :imported, rows_updated = rows_updated + :updated,
    rows_rejected = rows_rejected + :rejected, rows_duplicate = rows_duplicate + :duplicate,
    rows_suppressed = rows_suppressed + :suppressed, checkpoint_row = :checkpoint, updated_at = now()
WHERE id = :imp AND org_id = :org
"""


@dataclass
class Chunk:
    """Rows read since the last commit: valid rows with their cells, and rejections."""

    rows: list[tuple[LeadRow, list[str]]] = field(default_factory=list)
    rejects: list[tuple[int, str, list[str]]] = field(default_factory=list)
    read: int = 0
    last_row: int = 0

    def __len__(self) -> int:
        return self.read


@dataclass
class Counts:
    """What one chunk did, added to the import's counters."""

    read: int = 0
    imported: int = 0
    updated: int = 0
    rejected: int = 0
    duplicate: int = 0
    suppressed: int = 0


def time_ordered_prefix() -> str:
    """The first 24 hex digits of a UUIDv7 (RFC 9562): the time now in ms, the version, random bits.

    An inserted lead's id is this prefix and its row number in 8 hex digits, so the ids of
    one chunk are in file order and later chunks sort after earlier ones: the primary key
    (and every index ending in ``id``) is appended to instead of written at random pages.
    42 random bits per chunk keep two imports in the same millisecond apart.
    """
    rand = secrets.randbits(42)
    millis = time.time_ns() // 1_000_000
    return f"{millis:012x}7{rand >> 30:03x}{0x8 | (rand >> 28) & 0x3:x}{rand & 0xFFFFFFF:07x}"


def _clean(cell: str) -> str:
    """Make a raw cell storable as JSON text: no NUL, undecodable bytes shown as U+FFFD."""
    if _UNSTORABLE.search(cell):
        cell = _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", cell.replace(LINE_TOO_LONG, ""))
    return cell


def _report_cells(cells: Sequence[str]) -> list[str]:
    return [_clean(c[:MAX_REPORT_CELL]) for c in cells[: MAX_COLUMNS + 1]]


@contextmanager
def _short_gil_slices(seconds: float = 0.0005) -> Iterator[None]:
    """Let the writer thread back onto the GIL sooner while the parsing thread is busy.

    Every database round trip of the writer ends with it waiting for the GIL, which the
    parsing thread gives up only every switch interval (5 ms by default); a chunk makes
    hundreds of round trips (statements, COPY buffer flushes). A shorter interval for the
    length of the import cut the end-to-end time by about a tenth in ``bench/import.py``.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class _Writer:
    """Write chunks on one background thread while the next chunk is parsed; at most one in flight.

    The database work of a chunk (mostly waiting on PostgreSQL, which releases the GIL) then
    overlaps the validation of the next one. Only the writer thread touches the connection.
    """

    def __init__(self, pool: ThreadPoolExecutor, write: Callable[[Chunk], Counts]) -> None:
        self._pool = pool
        self._write = write
        self._pending: Future[Counts] | None = None

    def submit(self, chunk: Chunk) -> None:
        """Wait for the chunk in flight (re-raising its error), then start writing ``chunk``."""
        self.drain()
        self._pending = self._pool.submit(contextvars.copy_context().run, self._write, chunk)

    def drain(self) -> None:
        """Wait for the chunk in flight, if any."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()


class ImportRun:
    """Run one import to completion (or resume it) on a synchronous engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        data_dir: Path,
        hash_key: bytes,
        chunk_rows: int = 20_000,
        max_rows: int = 1_000_000,
        resolver: Callable[[], dns.resolver.Resolver] | None = None,
    ) -> None:
        """``resolver`` makes the DNS resolver of imports asking for the MX check (the system's by default)."""
        self.engine = engine
        self.resolver = resolver or (lambda: mx_resolver([], 3.0))
        self.data_dir = data_dir
        self.hash_key = hash_key
        self.chunk_rows = chunk_rows
        self.max_rows = max_rows
        self._hashes: set[str] = set()
        self._hashes_since: datetime | None = None
        self._unanalysed = 0
        self._analyse_after: int | None = None

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _system(self, conn: Connection) -> Iterator[Connection]:
        with conn.begin():
            scope_to_system(conn)
            yield conn

    @contextmanager
    def _tenant(self, conn: Connection, org_id: uuid.UUID) -> Iterator[Connection]:
        with conn.begin():
            scope_to_tenant(conn, org_id)
            yield conn

    # ------------------------------------------------------------------ the run

    def run(self, import_id: uuid.UUID) -> str:
        """Import (or resume importing) ``import_id``; return what happened (``done``, ``busy``, ...)."""
        with self.engine.connect() as conn:
            lock_key = {"key": f"lead-import:{import_id}"}
            locked = conn.execute(sa.text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), lock_key).scalar()
            conn.commit()
            if not locked:
                return "busy"
            try:
                return self._run_locked(conn, import_id)
            finally:
                conn.rollback()
                conn.execute(sa.text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), lock_key)
                conn.commit()

    def _run_locked(self, conn: Connection, import_id: uuid.UUID) -> str:
        with self._system(conn):
            job = (
                conn.execute(sa.text("SELECT * FROM lead_imports WHERE id = :id"), {"id": import_id}).mappings().first()
            )
        if job is None:
            return "missing"
        if job["status"] in (ImportStatus.COMPLETED, ImportStatus.FAILED):
            return "done"
        org_id: uuid.UUID = job["org_id"]
        structlog.contextvars.bind_contextvars(org_id=str(org_id), import_id=str(import_id))
        path = self._scratch_copy(conn, job)
        if path is None:
            self._finish(conn, job, ImportStatus.FAILED, "The uploaded file is no longer available; upload it again.")
            return "failed"
        try:
            return self._run_file(conn, job, path)
        finally:
            if path.parent == self._scratch_dir:
                path.unlink(missing_ok=True)

    @property
    def _scratch_dir(self) -> Path:
        return self.data_dir / "import-work"

    def _scratch_copy(self, conn: Connection, job: Any) -> Path | None:
        """This process's own copy of the import's file, from PostgreSQL; None when it is gone.

        An import registered before files were kept in the database names a file under the
        data directory instead (``file_path``); it is read there, on the host that received it.
        """
        for stale in self._scratch_dir.glob(f"{job['id']}-*.csv"):  # left by a run of this import that was killed
            stale.unlink(missing_ok=True)  # (safe: this run holds the import's lock)
        dest = self._scratch_dir / f"{job['id']}-{secrets.token_hex(4)}.csv"
        with self._system(conn):
            if filestore.fetch(conn, job["id"], dest):
                return dest
        legacy = self.data_dir / job["file_path"] if job["file_path"] else None
        return legacy if legacy is not None and legacy.is_file() else None

    def _run_file(self, conn: Connection, job: Any, path: Path) -> str:
        org_id: uuid.UUID = job["org_id"]
        import_id: uuid.UUID = job["id"]
        with self._tenant(conn, org_id):
            conn.execute(
                sa.text(
                    "UPDATE lead_imports SET status = 'running', started_at = COALESCE(started_at, now()),"
                    " updated_at = now() WHERE id = :id AND org_id = :org"
                ),
                {"id": import_id, "org": org_id},
            )
        log.info("lead_import_started", checkpoint_row=job["checkpoint_row"])
        try:
            overflow = self._import_file(conn, job, path)
        except (FileRejected, HeaderError) as exc:
            self._finish(conn, job, ImportStatus.FAILED, str(exc))
            return "failed"
        except Exception as exc:
            log.exception("lead_import_crashed", error_type=type(exc).__name__)
            conn.rollback()
            self._finish(
                conn, job, ImportStatus.FAILED, "The import stopped on an unexpected error; the rows counted are in."
            )
            raise
        note = (
            f"The file has more than {self.max_rows:,} rows; {overflow:,} rows after the limit were not imported."
            if overflow
            else None
        )
        self._finish(conn, job, ImportStatus.COMPLETED, note)
        if path.parent != self._scratch_dir:
            path.unlink(missing_ok=True)  # a file the receiving host kept (imports from before 0013)
        log.info("lead_import_completed")
        return "done"

    def _finish(self, conn: Connection, job: Any, status: ImportStatus, error: str | None) -> None:
        """Record the import's end; its stored file is no longer needed (the report is in rejections)."""
        with self._tenant(conn, job["org_id"]):
            filestore.drop(conn, job["id"])
            conn.execute(
                sa.text(
                    "UPDATE lead_imports SET status = :status, error = :error, finished_at = now(), updated_at = now()"
                    " WHERE id = :id AND org_id = :org"
                ),
                {
                    "status": status.value,
                    "error": error[:2000] if error else None,
                    "id": job["id"],
                    "org": job["org_id"],
                },
            )

    def _import_file(self, conn: Connection, job: Any, path: Path) -> int:
        """Stream the file in chunks; return how many rows were over the row limit."""
        with (
            path.open("rb") as stream,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="lead-import") as pool,
            _short_gil_slices(),
        ):
            fmt = detect_format(stream.read(65536))
            stream.seek(0)
            delimiter, records = open_rows(stream, fmt, delimiter=job["delimiter"] or None)
            iterator = iter(records)
            header = next(iterator)
            if isinstance(header, csv.Error):
                raise FileRejected(f"The header row is not valid CSV: {header}.")
            columns = build_columns(header, job["mapping"] or None, unmapped=job["options"].get("unmapped", "custom"))
            self._record_format(conn, job, fmt.encoding, delimiter, header, columns)
            resolver = self.resolver() if job["options"].get("check_mx") else None
            parser = RowParser(columns, ContactValidator(job["default_region"], resolver=resolver))
            checkpoint: int = job["checkpoint_row"]
            record_no, data_rows, overflow = 1, 0, 0
            chunk = Chunk()
            writer = _Writer(pool, lambda c: self._write_chunk(conn, job, c))
            for record in iterator:
                record_no += 1
                if isinstance(record, list) and not any(c.strip() for c in record):
                    continue  # blank line
                if record_no <= checkpoint:
                    data_rows += 1
                    continue
                if data_rows >= self.max_rows:
                    overflow += 1
                    continue
                data_rows += 1
                chunk.read += 1
                chunk.last_row = record_no
                if isinstance(record, csv.Error):
                    chunk.rejects.append((record_no, f"The row is not valid CSV: {record}.", []))
                else:
                    try:
                        chunk.rows.append((parser.parse(record_no, record), record))
                    except RowError as exc:
                        chunk.rejects.append((record_no, str(exc), _report_cells(record)))
                if chunk.read >= self.chunk_rows:
                    writer.submit(chunk)
                    chunk = Chunk()
            if chunk.read:
                writer.submit(chunk)
            writer.drain()
            return overflow

    def _record_format(
        self, conn: Connection, job: Any, encoding: str, delimiter: str, header: list[str], columns: ColumnMap
    ) -> None:
        options = {**job["options"], "header": [h[:200] for h in header[:MAX_COLUMNS]]}
        with self._tenant(conn, job["org_id"]):
            conn.execute(
                sa.text(
                    "UPDATE lead_imports SET encoding = :encoding, delimiter = :delimiter,"
                    " mapping = CAST(:mapping AS jsonb), options = CAST(:options AS jsonb)"
                    " WHERE id = :id AND org_id = :org"
                ),
                {
                    "encoding": encoding,
                    "delimiter": delimiter,
                    "mapping": json.dumps(columns.as_json(header)),
                    "options": json.dumps(options),
                    "id": job["id"],
                    "org": job["org_id"],
                },
            )

    # ------------------------------------------------------------------ one chunk

    def _write_chunk(self, conn: Connection, job: Any, chunk: Chunk) -> Counts:
        org_id: uuid.UUID = job["org_id"]
        import_id: uuid.UUID = job["id"]
        counts = Counts(read=chunk.read)
        rejects = list(chunk.rejects)
        duplicates: list[tuple[LeadRow, list[str]]] = []
        firsts: dict[str, tuple[LeadRow, list[str]]] = {}
        for item in chunk.rows:
            if item[0].key in firsts:
                duplicates.append(item)
            else:
                firsts[item[0].key] = item
        with self._tenant(conn, org_id):
            erased = self._erased(conn, org_id, [row for row, _ in firsts.values()])
            staged = []
            for key, (row, cells) in firsts.items():
                if key in erased:
                    rejects.append((row.row_number, ERASED_REASON, []))
                else:
                    staged.append((row, cells))
            params = {"org": org_id, "imp": import_id, "source": job["options"].get("consent_source") or "csv import"}
            conn.execute(sa.text(_CREATE_STAGE))
            self._copy(
                conn,
                f"COPY lead_stage ({', '.join(_STAGE_COLUMNS)}) FROM STDIN",
                (row for row, _ in staged),
            )
            if self._has_suppressions(conn, org_id):
                conn.execute(
                    sa.update(STAGE)
                    .where(suppressed_clause(org_id=org_id, channel=None, key=self.hash_key, leads=STAGE, hashes=False))
                    .values(suppressed=True)
                )
            matched = conn.execute(sa.text(_MATCH_BY_EMAIL), params).rowcount
            matched += conn.execute(sa.text(_MATCH_BY_PHONE), params).rowcount
            dup_rows: set[int] = set()
            if matched:  # a chunk of new leads (the common case) skips the update statements
                conn.execute(sa.text(_DUP_WITHIN_CHUNK))
                dup_rows = {r for (r,) in conn.execute(sa.text("SELECT row_number FROM lead_stage WHERE dup"))}
                counts.updated = conn.execute(sa.text(_UPDATE), params).rowcount
            counts.imported = self._insert(conn, params)
            by_row = {row.row_number: (row, cells) for row, cells in staged}
            duplicates.extend(by_row[n] for n in sorted(dup_rows))
            # Rows neither inserted nor updated nor known duplicates lost a race with a concurrent write.
            lost = len(staged) - len(dup_rows) - counts.updated - counts.imported
            counts.duplicate = len(duplicates) + max(lost, 0)
            for row, cells in duplicates:
                rejects.append((row.row_number, DUPLICATE_REASON, _report_cells(cells)))
            if self._has_suppressions(conn, org_id):
                counts.suppressed = conn.execute(
                    sa.text("SELECT count(*) FROM lead_stage WHERE suppressed AND NOT dup")
                ).scalar_one()
            counts.rejected = len(rejects) - len(duplicates)
            if rejects:
                # COPY cannot write a table under row-level security: stage, then one INSERT.
                conn.execute(sa.text(_CREATE_REJECT_STAGE))
                self._copy(
                    conn,
                    "COPY reject_stage (row_number, reason, cells) FROM STDIN",
                    ((n, reason[:500], json.dumps(cells)) for n, reason, cells in rejects),
                )
                conn.execute(sa.text(_INSERT_REJECTS), params)
            conn.execute(
                sa.text(_PROGRESS),
                {
                    "read": counts.read,
                    "imported": counts.imported,
                    "updated": counts.updated,
                    "rejected": counts.rejected,
                    "duplicate": counts.duplicate,
                    "suppressed": counts.suppressed,
                    "checkpoint": chunk.last_row,
                    "imp": import_id,
                    "org": org_id,
                },
            )
        self._keep_statistics(conn, counts.imported)
        log.info("lead_import_chunk", rows=counts.read, last_row=chunk.last_row, imported=counts.imported)
        return counts

    def _keep_statistics(self, conn: Connection, inserted: int) -> None:
        """Refresh the planner's statistics on ``leads`` each time this run has doubled its rows.

        A big import makes a table the statistics think small (or empty), and the statements
        joining later chunks to it would be planned for that: a scan of the organization's
        leads per staged row instead of an index lookup. Autovacuum catches up within a
        minute; this keeps an import from depending on it, at a cost of about a dozen samples
        per million rows (each refresh waits until the table has doubled). The import's login
        role owns the table where migrations ran as it; where it does not, PostgreSQL skips
        the ANALYZE with a warning and autovacuum remains.
        """
        if self._analyse_after is None:
            self._analyse_after = max(ANALYSE_FIRST, self._known_rows(conn))
        self._unanalysed += inserted
        if self._unanalysed < self._analyse_after:
            return
        with conn.begin():
            conn.execute(sa.text("ANALYZE leads (org_id)"))
        self._unanalysed = 0
        self._analyse_after = max(ANALYSE_FIRST, self._known_rows(conn))

    @staticmethod
    def _known_rows(conn: Connection) -> int:
        """How many rows the planner's statistics say ``leads`` has (0 before the first ANALYZE)."""
        with conn.begin():
            rows = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = 'leads'::regclass")).scalar()
        return max(int(rows or 0), 0)

    @staticmethod
    def _insert(conn: Connection, params: dict[str, Any]) -> int:
        """Insert the chunk's new leads; return how many.

        The rows were matched against the leads table in this transaction, so a plain insert
        (no ``ON CONFLICT`` probe per row) almost always succeeds. A lead written by someone
        else since then makes it fail on a unique index; the chunk then inserts again, skipping
        the conflicting rows (counted as duplicates by the caller).
        """
        params = {**params, "id_prefix": time_ordered_prefix()}
        try:
            with conn.begin_nested():
                return conn.execute(sa.text(_INSERT), params).rowcount
        except sa.exc.IntegrityError as exc:
            if not isinstance(exc.orig, psycopg.errors.UniqueViolation):
                raise
            log.info("lead_import_chunk_raced", constraint=exc.orig.diag.constraint_name)
            return conn.execute(sa.text(_INSERT_RACING), params).rowcount

    def _erased(self, conn: Connection, org_id: uuid.UUID, rows: Sequence[LeadRow]) -> set[str]:
        """Keys of rows whose email or phone matches an erasure hash (new hashes are fetched each chunk)."""
        found = conn.execute(
            sa.text(
                "SELECT value, created_at FROM suppressions WHERE org_id = :org AND kind = 'hash'"
                " AND created_at >= COALESCE(CAST(:since AS timestamptz), '-infinity')"
            ),
            {"org": org_id, "since": self._hashes_since},
        ).all()
        for value, created_at in found:
            self._hashes.add(value)
            self._hashes_since = max(self._hashes_since or created_at, created_at)
        if not self._hashes:
            return set()
        erased = set()
        for row in rows:
            if (
                row.email_normalized and contact_hash(self.hash_key, "email", row.email_normalized) in self._hashes
            ) or (row.phone and contact_hash(self.hash_key, "phone", row.phone) in self._hashes):
                erased.add(row.key)
        return erased

    @staticmethod
    def _has_suppressions(conn: Connection, org_id: uuid.UUID) -> bool:
        """Whether the organization has any entry an import row could match (erasure hashes are checked apart)."""
        stmt = "SELECT EXISTS (SELECT 1 FROM suppressions WHERE org_id = :org AND kind <> 'hash')"
        return bool(conn.execute(sa.text(stmt), {"org": org_id}).scalar_one())

    @staticmethod
    def _copy(conn: Connection, statement: str, rows: Any) -> None:
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
