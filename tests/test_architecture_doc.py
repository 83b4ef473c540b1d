"""ARCHITECTURE.md stays true: every test it cites exists, and every citation of it names a guarantee it defines."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

DOC = ROOT / "ARCHITECTURE.md"
CITED_TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
DEFINED = re.compile(r"^- \*\*([A-Z]\d+)\*\*", re.MULTILINE)
CITATION = re.compile(r"ARCHITECTURE\.md ([A-Z]\d+)\b")
SOURCES = ("gateway", "services", "libs", "tests", "bench")


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def test_every_cited_test_exists() -> None:
    cited = CITED_TEST.findall(_doc())
    assert len(cited) >= 20
    missing = []
    for path, name in cited:
        source = ROOT / path
        if not source.is_file() or not re.search(rf"^(async )?def {name}\(", source.read_text("utf-8"), re.MULTILINE):
            missing.append(f"{path}::{name}")
    assert missing == []


def test_guarantee_ids_are_unique() -> None:
    ids = DEFINED.findall(_doc())
    assert {"R4", "R13", "C10"} <= set(ids)
    assert len(ids) == len(set(ids))


def test_every_citation_in_the_tree_names_a_defined_guarantee() -> None:
    defined = set(DEFINED.findall(_doc()))
    unknown = []
    files = [p for top in SOURCES for p in sorted((ROOT / top).rglob("*.py")) if "node_modules" not in p.parts]
    for path in files:
        for number, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1):
            for cited in CITATION.findall(line):
                if cited not in defined:
                    unknown.append(f"{Path(path).relative_to(ROOT)}:{number}: {cited}")
    assert unknown == []
