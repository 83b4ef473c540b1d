"""Idle memory of everything ``./tidewater up`` starts: RSS and PSS per process, summed.

Run ``uv run python bench/idle_rss.py`` (about a minute). It starts ``sdr dev`` exactly as
``./tidewater up`` does (default worker count, embedded PostgreSQL and Redis, a fresh data dir
on free ports), waits until the gateway's ``/readyz`` is green and the system has been idle for
``--settle`` seconds, then reads ``/proc/<pid>/status`` (``VmRSS``) and ``smaps_rollup``
(``Pss``: each shared page divided among the processes that map it, so the sum is what the
system really holds) for every process of the tree.

The baseline, measured in the same run: a bare Python interpreter (``python -c pass``) and one
that imports the web stack every Tidewater process shares (Litestar, SQLAlchemy, Redis), so a
reader sees how much of each process is the language and its frameworks. The goal (under 600 MB
for the Python processes) is printed beside the figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_MB = 600.0


@dataclass(frozen=True)
class Usage:
    """One process's memory."""

    pid: int
    name: str
    rss_mb: float
    pss_mb: float


def _pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _label(proc: psutil.Process) -> str:
    try:
        argv = proc.cmdline()
    except psutil.Error:
        return "?"
    if not argv:
        return proc.name()
    words = [Path(a).name for a in argv[:6]]
    for marker in ("sdr", "libs.cli"):  # `sdr dev` itself, and its children (`python -m libs.cli ...`)
        if marker in words:
            i = words.index(marker)
            rest = [w for w in argv[i + 1 : i + 3] if not w.startswith("-")]
            return "sdr " + " ".join(rest)
    return proc.name()


def usage_of(pids: list[int]) -> list[Usage]:
    """Memory of each live process in ``pids``."""
    rows = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            rss = proc.memory_info().rss / 2**20
            rows.append(Usage(pid, _label(proc), rss, _pss_mb(pid)))
        except psutil.Error:
            continue
    return rows


def baseline(code: str) -> float:
    """RSS in MB of a Python child that runs ``code`` and then waits."""
    child = subprocess.Popen(
        [sys.executable, "-c", code + "\nimport sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert child.stdout is not None
    child.stdout.readline()
    rss = psutil.Process(child.pid).memory_info().rss / 2**20
    child.communicate(b"")
    return rss


def main(argv: list[str] | None = None) -> int:
    """Start the system, measure it idle, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settle", type=float, default=10.0, help="idle seconds after /readyz before measuring")
    args = parser.parse_args(argv)

    from libs.dev.settings import DevSettings
    from tests.support.dev import readyz, run_sdr_dev, wait_for

    bare = baseline("pass")
    stack = baseline("import litestar, sqlalchemy, redis, structlog, pydantic")
    workers = DevSettings.model_fields["dev_workers"].default
    with (
        tempfile.TemporaryDirectory() as folder,
        run_sdr_dev(Path(folder), extra_env={"SDR_DEV_WORKERS": str(workers)}) as system,
    ):
        wait_for(lambda: readyz(system)[0] == 200, "/readyz", system, timeout=240)
        time.sleep(args.settle)
        root = psutil.Process(system.process.pid)
        pids = [root.pid, *(p.pid for p in root.children(recursive=True))]
        rows = usage_of(pids)

    python = [r for r in rows if r.name.startswith("sdr")]
    servers = [r for r in rows if not r.name.startswith("sdr")]
    print(f"baseline: bare python {bare:.0f} MB RSS; python + the shared web stack {stack:.0f} MB")
    print(f"\n{'process':<28} {'pid':>7} {'RSS MB':>8} {'PSS MB':>8}")
    for r in sorted(python, key=lambda r: -r.rss_mb):
        print(f"{r.name:<28} {r.pid:>7} {r.rss_mb:8.1f} {r.pss_mb:8.1f}")
    rss = sum(r.rss_mb for r in python)
    pss = sum(r.pss_mb for r in python)
    verdict = "met" if rss < GOAL_MB else "NOT met"
    label = f"Python processes ({len(python)})"
    print(f"{label:<28} {'':>7} {rss:8.1f} {pss:8.1f}   goal: RSS < {GOAL_MB:.0f} MB in all: {verdict}")
    srv_rss = sum(r.rss_mb for r in servers)
    srv_pss = sum(r.pss_mb for r in servers)
    label = f"other processes ({len(servers)})"
    print(f"{label:<28} {'':>7} {srv_rss:8.1f} {srv_pss:8.1f}   (embedded Redis; PostgreSQL runs detached)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
