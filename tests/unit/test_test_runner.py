"""`make test` runs the lab's tests and the others as two sessions at once (tests/run.py): its exit
status must fail when either fails, and the two sessions must never share a test cluster."""

from __future__ import annotations

import socket

from tests.ports import free_block
from tests.run import NO_TESTS, combined, early


def test_the_run_fails_when_either_session_fails_and_passes_when_one_had_nothing_to_run():
    assert combined(0, 0) == 0
    assert combined(1, 0) == 1
    assert combined(0, 1) == 1
    assert combined(0, 2) == 2
    assert combined(NO_TESTS, 0) == 0
    assert combined(0, NO_TESTS) == 0
    assert combined(NO_TESTS, 1) == 1
    assert combined(NO_TESTS, NO_TESTS) == NO_TESTS


def test_a_block_with_a_port_someone_else_listens_on_is_passed_over():
    first = free_block()
    assert first is not None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first + 2))
        taken.listen()
        after = free_block(first)
    assert after is not None and after >= first + 10


def test_the_lab_comes_up_beside_the_other_session_unless_asked_to_wait_for_the_first_lab_test():
    assert early({}) == "beside"
    assert early({"KNTC_LAB_EARLY": "1"}) == "beside"
    assert early({"KNTC_LAB_EARLY": "0"}) == "0"
