"""libs.ledger.states: the named sets agree with each other and the enums; only libs/ledger writes status."""

from __future__ import annotations

import re
from pathlib import Path

from libs.db.models.campaign import EnrollmentStatus, MessageStatus
from libs.ledger import states
from libs.ledger.messages import SETTLE, STEP, advance_enrollments
from libs.ledger.resolution import RESOLVE

MESSAGE_STATES = {s.value for s in MessageStatus}


def test_every_message_status_is_ranked() -> None:
    assert set(states.RANK) == MESSAGE_STATES


def test_sets_name_only_real_states() -> None:
    for name in ("UNSENT", "IN_FLIGHT", "HANDED_OFF", "SETTLED", "TERMINAL"):
        assert getattr(states, name) <= MESSAGE_STATES, name
    enrollment_states = {s.value for s in EnrollmentStatus}
    assert enrollment_states == states.ENROLLMENT_LIVE | states.ENROLLMENT_ENDED
    assert not states.ENROLLMENT_LIVE & states.ENROLLMENT_ENDED


def test_terminal_and_unsent_are_disjoint_and_cover_all_but_the_claim() -> None:
    assert not states.TERMINAL & states.UNSENT
    assert {MessageStatus.SENDING.value} == MESSAGE_STATES - states.TERMINAL - states.UNSENT


def test_settled_is_terminal_and_ranked_last() -> None:
    assert states.SETTLED <= states.TERMINAL
    top = max(states.RANK.values())
    assert {s for s, r in states.RANK.items() if r == top} == states.SETTLED
    assert all(states.RANK[s] < top for s in states.HANDED_OFF)


def test_unsent_ranks_below_everything_handed_off() -> None:
    assert max(states.RANK[s] for s in states.UNSENT) < min(states.RANK[s] for s in states.HANDED_OFF)
    assert not states.UNSENT & states.HANDED_OFF
    assert not states.SETTLED & states.HANDED_OFF


def test_in_flight_is_not_terminal() -> None:
    assert not states.IN_FLIGHT & states.TERMINAL


def test_callbacks_only_move_forward() -> None:
    for target, sources in states.ADVANCE_FROM.items():
        assert not sources & states.UNSENT, target
        assert not sources & (states.SETTLED - {MessageStatus.DELIVERED.value}), target
        for source in sources:
            assert states.RANK[source] <= states.RANK[target], (source, target)
    assert states.advance_from(MessageStatus.SENT) == {"sending", "unknown"}
    assert states.advance_from(MessageStatus.DELIVERED) == {"sending", "unknown", "sent"}
    assert states.advance_from(MessageStatus.BOUNCED) == {"sending", "unknown", "sent", "delivered"}


# --------------------------------------------------------------------------- one home for status writes

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("gateway", "services", "libs", "bench")
HOME = ROOT / "libs" / "ledger"
MIGRATIONS = ROOT / "libs" / "db" / "migrations"

_SQL_UPDATE = re.compile(
    r"\bUPDATE\s+(enrollments|messages)\b(?:\s+(?!SET\b)\w+)?\s+SET\b(?P<set>.*?)(?:\bFROM\b|\bWHERE\b|\bRETURNING\b|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_CORE_UPDATE = re.compile(
    r"\b(?:sa\.)?update\(\s*(ENROLLMENTS|MESSAGES|Enrollment|Message)\b\s*\)(?P<rest>[^;]*?)\.values\((?P<set>[^)]*)\)",
    re.DOTALL,
)
_ORM_WRITE = re.compile(r"\.status\s*=\s*(?:EnrollmentStatus|MessageStatus)\.")
_STATUS = re.compile(r"\bstatus\s*=", re.IGNORECASE)


def status_writes(text: str) -> list[str]:
    """Each statement in ``text`` that writes an enrollment's or a message's status (a short excerpt)."""
    found = [m.group(0)[:80] for m in _SQL_UPDATE.finditer(text) if _STATUS.search(m.group("set"))]
    found += [m.group(0)[:80] for m in _CORE_UPDATE.finditer(text) if _STATUS.search(m.group("set"))]
    found += [m.group(0) for m in _ORM_WRITE.finditer(text)]
    return found


def test_the_detector_finds_every_spelling() -> None:
    assert status_writes("UPDATE enrollments SET status = 'stopped' WHERE id = :id")
    assert status_writes("UPDATE messages m\n SET hold_reason = NULL,\n  status = v.status FROM v")
    assert status_writes("sa.update(MESSAGES).where(MESSAGES.c.id == i).values(status='skipped', x=1)")
    assert status_writes("enrollment.status = EnrollmentStatus.STOPPED.value")
    assert not status_writes("UPDATE messages SET updated_at = :now WHERE status IN ('queued')")
    assert not status_writes("UPDATE messages m SET next_attempt_at = :lease FROM v WHERE m.status = 'sending'")
    assert not status_writes("UPDATE campaigns SET status = 'paused' WHERE id = :id")


def test_no_module_outside_libs_ledger_writes_enrollment_or_message_status() -> None:
    offenders: list[str] = []
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            if path.is_relative_to(HOME) or path.is_relative_to(MIGRATIONS):
                continue
            for excerpt in status_writes(path.read_text("utf-8")):
                offenders.append(f"{path.relative_to(ROOT)}: {' '.join(excerpt.split())}")
    assert offenders == [], "status is written outside libs/ledger:\n" + "\n".join(offenders)


def test_the_worker_and_operators_move_an_enrollment_on_with_one_statement_body() -> None:
    """A skip, a recorded send and an operator's decision advance the enrollment alike (one CTE body)."""
    position, due, action = "CAST(:r_position AS integer)", "CAST(:r_due AS timestamptz)", "CAST(:r_action AS varchar)"
    uses = [
        (SETTLE.text, advance_enrollments("settled", "st", position="st.position", due="st.due", action="st.action")),
        (STEP.text, advance_enrollments("recorded", "r", position=position, due=due, action=action)),
        (RESOLVE.text, advance_enrollments("resolved", "r", position="r.position", due="r.due", action="r.action")),
    ]
    for text, body in uses:
        assert body in text
        assert text.count("UPDATE enrollments") == text.count(body) + ("stopped AS" in text) + ("rewound AS" in text)
