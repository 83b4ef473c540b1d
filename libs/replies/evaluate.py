"""Scoring a classifier on a labelled set of replies: per-intent precision, recall, F1, a confusion matrix.

The set is JSON lines (``bench/data/replies.jsonl``): ``text``, ``language``, ``intent``, the
expected ``fields`` (``not_before`` for deferrals and absences, ``referral`` for referrals),
``received_at`` and ``split``: ``dev`` is what the local rules were tuned on; ``holdout``, ``final``,
``blind`` to ``blind5`` were each written apart from the rules and scored once before
any change they prompted.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from libs import optout
from libs.replies.intents import Intent, ReplyClassification

DATA = Path(__file__).resolve().parents[2] / "bench" / "data" / "replies.jsonl"


@dataclass(frozen=True)
class Case:
    """One labelled reply."""

    text: str
    language: str
    intent: Intent
    fields: dict[str, Any]
    received_at: datetime
    split: str
    tags: tuple[str, ...] = ()


def load(path: Path = DATA, *, split: str | None = None) -> list[Case]:
    """The labelled replies of ``path`` (only ``split``'s, when given)."""
    cases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        case = Case(
            text=row["text"],
            language=row["language"],
            intent=Intent(row["intent"]),
            fields=row.get("fields") or {},
            received_at=datetime.fromisoformat(row["received_at"]),
            split=row.get("split", "dev"),
            tags=tuple(row.get("tags") or ()),
        )
        if split is None or case.split == split:
            cases.append(case)
    return cases


@dataclass(frozen=True)
class Scores:
    """Precision, recall and F1 of one intent, and how many cases carry it."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Report:
    """What a classifier scored on a set of cases."""

    per_intent: dict[Intent, Scores]
    confusion: dict[Intent, Counter[Intent]]
    total: int
    correct: int
    field_checks: Counter[str] = field(default_factory=Counter)
    field_hits: Counter[str] = field(default_factory=Counter)
    misses: list[tuple[Case, Intent]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Share of cases given their labelled intent."""
        return self.correct / self.total if self.total else 0.0

    @property
    def macro_f1(self) -> float:
        """The mean F1 over the intents the set carries."""
        present = [s.f1 for s in self.per_intent.values() if s.support]
        return sum(present) / len(present) if present else 0.0


Predict = Callable[[Case], ReplyClassification | Intent]


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def score(cases: Sequence[Case], predict: Predict) -> Report:
    """Run ``predict`` on every case and score it (fields only when ``predict`` gives a classification)."""
    confusion: dict[Intent, Counter[Intent]] = {intent: Counter() for intent in Intent}
    checks: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    misses: list[tuple[Case, Intent]] = []
    for case in cases:
        got = predict(case)
        intent = got if isinstance(got, Intent) else got.intent
        confusion[case.intent][intent] += 1
        if intent is not case.intent:
            misses.append((case, intent))
        if isinstance(got, ReplyClassification) and intent is case.intent:
            _check_fields(case, got, checks, hits)
    per_intent = {}
    for intent in Intent:
        tp = confusion[intent][intent]
        predicted = sum(row[intent] for row in confusion.values())
        support = sum(confusion[intent].values())
        p, r = _ratio(tp, predicted), _ratio(tp, support)
        per_intent[intent] = Scores(p, r, _ratio(int(2 * p * r * 1e9), int((p + r) * 1e9)), support)
    correct = sum(confusion[i][i] for i in Intent)
    return Report(per_intent, confusion, len(cases), correct, checks, hits, misses)


def _check_fields(case: Case, got: ReplyClassification, checks: Counter[str], hits: Counter[str]) -> None:
    if "not_before" in case.fields:
        checks["not_before"] += 1
        day = got.fields.not_before.isoformat() if got.fields.not_before else None
        hits["not_before"] += day == case.fields["not_before"]
    expected = case.fields.get("referral")
    if case.intent is Intent.REFERRAL and expected:
        referral = got.fields.referral
        for key in ("name", "email"):
            if expected.get(key) is None and referral is None:
                continue
            checks[f"referral_{key}"] += 1
            value = getattr(referral, key, None) if referral else None
            hits[f"referral_{key}"] += (value or "").casefold() == (expected.get(key) or "").casefold()


def baseline(case: Case) -> Intent:
    """The opt-out word classifier of :mod:`libs.optout`, mapped onto intents (the figure to beat)."""
    found = optout.classify(optout.reply_text(case.text))
    if found.is_opt_out:
        return Intent.UNSUBSCRIBE
    return {optout.Intent.HELP: Intent.QUESTION, optout.Intent.OPT_IN: Intent.INTERESTED}.get(
        found.intent, Intent.OTHER
    )


def render(report: Report, title: str) -> str:
    """The report as text: per-intent table, macro F1, field accuracy and the confusion matrix."""
    intents = [i for i in Intent if report.per_intent[i].support or sum(r[i] for r in report.confusion.values())]
    lines = [f"== {title}: {report.total} replies, accuracy {report.accuracy:.3f}, macro F1 {report.macro_f1:.3f}"]
    lines.append(f"{'intent':<16}{'precision':>10}{'recall':>8}{'f1':>8}{'n':>5}")
    for intent in intents:
        s = report.per_intent[intent]
        lines.append(f"{intent.value:<16}{s.precision:>10.3f}{s.recall:>8.3f}{s.f1:>8.3f}{s.support:>5}")
    for name in sorted(report.field_checks):
        checked, hit = report.field_checks[name], report.field_hits[name]
        lines.append(f"field {name}: {hit}/{checked} right ({_ratio(hit, checked):.3f})")
    short = {i: i.value[:5] for i in intents}
    lines.append("confusion (rows: labelled, columns: predicted)")
    lines.append(" " * 16 + "".join(f"{short[i]:>6}" for i in intents))
    for row in intents:
        lines.append(f"{row.value:<16}" + "".join(f"{report.confusion[row][col] or '.':>6}" for col in intents))
    return "\n".join(lines)


def by_intent(cases: Iterable[Case]) -> Counter[Intent]:
    """How many cases carry each intent."""
    return Counter(case.intent for case in cases)


__all__ = ["DATA", "Case", "Report", "Scores", "baseline", "by_intent", "load", "render", "score"]
