"""libs.ledger.states: the named sets of the ledger's states agree with each other and with the enums."""

from __future__ import annotations

from libs.db.models.campaign import EnrollmentStatus, MessageStatus
from libs.ledger import states

MESSAGE_STATES = {s.value for s in MessageStatus} - {"rendering"}  # dead, no set names it; being dropped


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
