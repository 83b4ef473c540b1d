"""infra/Procfile: one line per process of the table, the same ``sdr`` commands."""

from __future__ import annotations

import re
import subprocess
import sys

from libs.processes import PROCESSES, PUBLIC, Kind
from tests.infra.support import PROCFILE, ROOT

LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def procfile() -> dict[str, str]:
    entries = {}
    for line in PROCFILE.read_text().splitlines():
        match = LINE.match(line)
        if match and not line.startswith("#"):
            entries[match.group(1)] = match.group(2)
    return entries


def test_one_line_per_process() -> None:
    names = ["release" if p.kind is Kind.ONE_SHOT else p.name for p in PROCESSES]
    assert list(procfile()) == names


def test_the_commands_are_the_tables() -> None:
    entries = procfile()
    for process in PROCESSES:
        command = entries["release" if process.kind is Kind.ONE_SHOT else process.name].split()
        expected = list(process.command)
        if process.kind is Kind.HTTP and process.name != PUBLIC:
            # On one host the services listen on loopback: only the gateway is reached from outside.
            expected[expected.index("--host") + 1] = "127.0.0.1"
        assert command == expected


def test_the_table_uses_only_commands_sdr_lists() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "libs.cli", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True
    )
    listed = set(re.findall(r"^  ([a-z][a-z-]*)\s", result.stdout.split("Commands:", 1)[1], re.MULTILINE))
    assert {p.subcommand for p in PROCESSES} <= listed
