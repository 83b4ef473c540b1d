"""infra/README.md describes the files that exist and the process table as it is."""

from __future__ import annotations

import re

from libs.processes import PROCESSES, Kind
from tests.infra.support import INFRA

README = INFRA / "README.md"


def test_every_process_and_its_command_is_described() -> None:
    text = README.read_text()
    for process in PROCESSES:
        assert f"`{process.name}`" in text
        if process.kind is not Kind.HTTP:
            assert f"`{' '.join(process.command)}`" in text
        else:
            assert f"--port {process.port}" in text or f"`{process.port}`" in text


def test_every_file_it_names_exists() -> None:
    text = README.read_text()
    for name in re.findall(r"`((?:docker|k8s|observability)/[^`\s]+|compose\.yaml|\.env\.example|Procfile)`", text):
        assert (INFRA / name).exists(), name


def test_it_says_the_files_are_validated_not_run_and_where_the_figures_come_from() -> None:
    text = README.read_text()
    assert "No container engine runs in CI: the files are validated, not run." in text
    section = text.split("## Scale-out figures", 1)[1]
    assert "bench/" in section
    assert "TODO" not in text
