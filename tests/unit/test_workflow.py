"""The workflow's rules, without HTTP or SQL."""

from __future__ import annotations

import pytest

from core_app.domain.workflow import ACTIONS, TERMINAL, Actor, Status, TransitionRefused, check

HANDLER = Actor(1, 10, frozenset({"handling"}), 0)
READER = Actor(2, 10, frozenset({"external_reader"}), 0)


def test_accept_from_handling_is_allowed():
    assert check("accept", "in_handling", HANDLER, 10, {}).target == Status.ACCEPTED


@pytest.mark.parametrize("status", [s.value for s in Status if s != Status.IN_HANDLING and s not in TERMINAL])
def test_accept_from_any_other_state_is_refused(status):
    with pytest.raises(TransitionRefused) as e:
        check("accept", status, HANDLER, 10, {})
    assert e.value.code == "illegal_transition"
    assert "Thụ lý" in e.value.vi


@pytest.mark.parametrize("status", sorted(s.value for s in TERMINAL))
def test_finished_cases_accept_no_action(status):
    for name in ACTIONS:
        if name == "second_round" and status == "closed":
            continue  # a closed first-round complaint may go to its second round (same case file)
        with pytest.raises(TransitionRefused) as e:
            check(name, status, Actor(1, 10, frozenset({"head", "handling", "resolution", "reception"}), 2), 10,
                  {"note": "x", "summary": "x", "target_unit": "X1"})
        assert e.value.code == "case_finished"


def test_external_reader_can_never_act():
    for name, action in ACTIONS.items():
        for status in action.sources:
            with pytest.raises(TransitionRefused) as e:
                check(name, status, READER, 10, {"note": "x", "summary": "x", "target_unit": "X1"})
            assert e.value.code == "role_not_allowed"


def test_other_unit_cannot_act():
    with pytest.raises(TransitionRefused) as e:
        check("accept", "in_handling", HANDLER, 11, {})
    assert e.value.code == "wrong_unit"


def test_forward_needs_a_target_and_resolve_a_summary():
    with pytest.raises(TransitionRefused, match="target_unit"):
        check("forward", "in_handling", HANDLER, 10, {})
    resolver = Actor(3, 10, frozenset({"resolution"}), 0)
    with pytest.raises(TransitionRefused, match="summary"):
        check("resolve", "verifying", resolver, 10, {})


def test_unknown_action_lists_the_known_ones():
    with pytest.raises(TransitionRefused) as e:
        check("approve_everything", "received", HANDLER, 10, {})
    assert "accept" in e.value.en
