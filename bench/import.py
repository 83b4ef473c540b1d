# ruff: noqa: N999 - the file name is the one the issue asks for
"""Benchmark the CSV lead import against a raw COPY of the same file.

Generates a CSV of lead-like rows, COPYs it into a bare table, then imports it end to end
through the import job (``services.campaign.leads.jobs.run_import``) in a child process, and
prints rows/s for both, the ratio (goal: at least 25% of COPY) and the peak RSS of the import
process (goal: under 300 MB).

It also prints what PostgreSQL alone needs to write the same rows into a table shaped like
``leads`` (its indexes, defaults and checks): the imported rows are COPYed from ``leads``
into such a table. That is the ceiling of any import into ``leads`` on this machine, whatever
the import does in Python, and shows how much of the gap to a bare COPY is the lead table's
own integrity (unique email per organization, phone lookups, listing order) rather than
parsing and validation.

    uv run python bench/import.py                 # 1,000,000 rows
    uv run python bench/import.py --rows 100000   # quicker
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from libs.db.migrate import upgrade  # noqa: E402
from libs.settings import normalize_database_url  # noqa: E402
from tests.support.servers import create_database, drop_database  # noqa: E402

AREA_CODES = (212, 213, 305, 312, 415, 503, 602, 617, 646, 702, 713, 720, 206, 404, 512, 615, 704, 808, 907, 919)
FIRST = ("Ann", "Bob", "Carla", "Dev", "Erin", "Farid", "Gita", "Hugo", "Ines", "José", "Kim", "Lena", "Mo", "Noor")
LAST = ("Smith", "García", "Nguyen", "Okafor", "Müller", "Rossi", "Kowalski", "Tanaka", "Silva", "Dubois")
TITLES = ("VP Sales", "Head of Operations", "CTO", "Founder", "Procurement Manager", "Director of IT")


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write ``rows`` unique lead-like rows (one in ten without a phone, some with a time zone)."""
    rng = random.Random(seed)
    domains = [f"company{i}.example.com" for i in range(2000)]
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,first_name,last_name,company,title,phone,timezone,industry\n")
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            domain = domains[i % len(domains)]
            phone = "" if i % 10 == 0 else f"+1{rng.choice(AREA_CODES)}{rng.randint(200, 999)}{i % 10000:04d}"
            tz = "America/Chicago" if i % 7 == 0 else ""
            out.write(
                f"{first.lower()}.{last.lower()}.{i}@{domain},{first},{last},Company {i % 2000},"
                f"{rng.choice(TITLES)},{phone},{tz},Industry {i % 40}\n"
            )


def raw_copy(url: str, path: Path) -> float:
    """COPY the file into a bare table of text columns; return the seconds taken."""
    engine = sa.create_engine(normalize_database_url(url), poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE bench_bare (email text, first_name text, last_name text, company text, title text,"
            " phone text, timezone text, industry text)"
        )
    started = time.perf_counter()
    with engine.begin() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        with (
            path.open("rb") as f,
            driver.cursor() as cur,
            cur.copy("COPY bench_bare FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        ):
            while block := f.read(1 << 20):
                copy.write(block)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def prepare_import(url: str, data_dir: Path, path: Path) -> uuid.UUID:
    """Create an organization and a queued import pointing at the file; return the import id."""
    org_id, import_id = uuid.uuid4(), uuid.uuid4()
    relative = f"imports/{org_id}/{import_id}.csv"
    target = data_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    engine = sa.create_engine(normalize_database_url(url), poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO organizations (id, name, created_at) VALUES (:id, 'bench', now())"), {"id": org_id}
        )
        conn.execute(
            sa.text(
                "INSERT INTO lead_imports (id, org_id, status, file_path, size_bytes, default_region, mapping, options,"
                " created_at) VALUES (:id, :org, 'queued', :path, :size, 'US', '{}', '{}', now())"
            ),
            {"id": import_id, "org": org_id, "path": relative, "size": path.stat().st_size},
        )
    engine.dispose()
    return import_id


def leads_ceiling(url: str) -> float:
    """COPY every row of ``leads`` into a fresh table shaped like it; return the seconds the writes took."""
    engine = sa.create_engine(normalize_database_url(url), poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE bench_leads (LIKE leads INCLUDING ALL)")
    with engine.connect() as source, engine.connect() as target:
        reader, writer = source.connection.driver_connection, target.connection.driver_connection
        assert reader is not None
        assert writer is not None
        started = time.perf_counter()
        with (
            reader.cursor() as out_cur,
            writer.cursor() as in_cur,
            out_cur.copy("COPY leads TO STDOUT") as out,
            in_cur.copy("COPY bench_leads FROM STDIN") as into,
        ):
            for block in out:
                into.write(block)
        writer.commit()
        elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def run_job(url: str, data_dir: Path, import_id: uuid.UUID, chunk_rows: int) -> tuple[float, float]:
    """Run the import job in a child process; return (seconds, peak RSS of the child in MB)."""
    env = {
        **os.environ,
        "SDR_DATABASE_URL": url,
        "SDR_DATA_DIR": str(data_dir),
        "SDR_IMPORT_CHUNK_ROWS": str(chunk_rows),
        "SDR_LOG_LEVEL": "WARNING",
    }
    code = "import sys; from services.campaign.leads.jobs import run_import; print(run_import(sys.argv[1]))"
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code, str(import_id)], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if result.stdout.strip().splitlines()[-1:] != ["done"]:
        raise SystemExit(f"the import job did not finish: {result.stdout}{result.stderr}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, peak_kb / 1024


def main() -> None:
    """Generate, COPY, import, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=20_000)
    parser.add_argument(
        "--server-url",
        default=os.environ.get("SDR_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="A PostgreSQL server URL; a scratch database is created on it and dropped afterwards.",
    )
    args = parser.parse_args()
    server = normalize_database_url(args.server_url)
    with tempfile.TemporaryDirectory(prefix="tw-bench-") as tmp:
        tmp_path = Path(tmp)
        csv_path = tmp_path / "leads.csv"
        started = time.perf_counter()
        generate(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({size_mb:,.1f} MB) in {time.perf_counter() - started:.1f} s")
        url = create_database(server, prefix="tw_bench")
        try:
            upgrade(url)
            copy_s = raw_copy(url, csv_path)
            import_id = prepare_import(url, tmp_path / "data", csv_path)
            import_s, peak_mb = run_job(url, tmp_path / "data", import_id, args.chunk_rows)
            ceiling_s = leads_ceiling(url)
            engine = sa.create_engine(url, poolclass=sa.NullPool)
            with engine.connect() as conn:
                counts = conn.execute(
                    sa.text("SELECT rows_read, rows_imported, rows_rejected, status FROM lead_imports")
                ).one()
                leads = conn.execute(sa.text("SELECT count(*) FROM leads")).scalar_one()
            engine.dispose()
        finally:
            drop_database(server, url)
    copy_rate, import_rate = args.rows / copy_s, args.rows / import_s
    ratio = import_rate / copy_rate
    print(f"raw COPY into a bare table : {copy_s:8.2f} s  {copy_rate:>10,.0f} rows/s")
    ceiling_rate = leads / ceiling_s
    print(f"COPY into a leads-like table: {ceiling_s:6.2f} s  {ceiling_rate:>10,.0f} rows/s  (the database's ceiling)")
    print(f"import job end to end      : {import_s:8.2f} s  {import_rate:>10,.0f} rows/s")
    print(f"import / COPY              : {ratio:8.1%}   (goal >= 25%: {'met' if ratio >= 0.25 else 'NOT met'})")
    print(f"import / leads-like COPY   : {import_rate / ceiling_rate:8.1%}")
    print(f"import process peak RSS    : {peak_mb:8.1f} MB  (goal < 300 MB: {'met' if peak_mb < 300 else 'NOT met'})")
    print(
        f"import counters            : read={counts[0]:,} imported={counts[1]:,} rejected={counts[2]:,} "
        f"status={counts[3]}; leads in table={leads:,}"
    )


if __name__ == "__main__":
    main()
