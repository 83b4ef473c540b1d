"""bench/classify.py prints the baseline beside the local classifier, per part, with a confusion matrix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from libs.replies.evaluate import load

ROOT = Path(__file__).resolve().parents[3]


def test_the_bench_prints_both_classifiers_per_part_with_a_confusion_matrix() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "classify.py")], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    parts = [*dict.fromkeys(c.split for c in load()), "all"]
    for part in parts:
        assert f"== baseline libs.optout, {part}:" in out
        assert f"== local, {part}:" in out
    assert out.count("confusion (rows: labelled, columns: predicted)") == 2 * len(parts)
    local_all = out.split("== local, all:")[1]
    assert "macro F1" in local_all.splitlines()[0]
    assert float(local_all.splitlines()[0].rsplit(" ", 1)[1]) >= 0.85
    assert "unsubscribe          1.000   1.000" in local_all
