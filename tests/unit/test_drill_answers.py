"""The drills' reading of what officers saw: the answers log written by loadtests/drill_officers.py,
the longest wait after a fault and the first answer after a decision."""

from __future__ import annotations

from pathlib import Path

from loadtests.drill_load import Answers, first_error, read_answers


def answers(*rows: tuple[float, int, float]) -> Answers:
    """(started, status, seconds) rows."""
    a = Answers()
    for started, status, took in rows:
        a.started.append(started)
        a.answers.append((status, took))
        a.names.append("/api/cases")
    return a


def test_the_longest_wait_counts_from_the_fault_to_answers_again():
    a = answers((0.0, 200, 0.1), (1.0, 0, 0.1), (2.0, 503, 0.1), (5.0, 200, 0.5), (6.0, 200, 0.1))
    # fault at 1.0; the next 200 ends at 5.5
    assert a.longest_wait_after(1.0) == 4.5
    assert a.first_answer_after(1.0) == 5.5
    assert [s for s, _ in a.failed] == [0, 503]


def test_no_answer_after_the_fault_is_no_figure_rather_than_a_small_one():
    a = answers((0.0, 200, 0.1), (1.0, 0, 0.1))
    assert a.longest_wait_after(0.5) is None
    assert a.first_answer_after(0.5) is None


def test_the_log_is_read_in_time_order_with_a_failure_kept_as_one(tmp_path: Path):
    log = tmp_path / "answers-0.log"
    log.write_text("100.5 0.2 200 1 /api/cases\n"
                   "100.0 0.1 0 0 /api/auth/login\tConnectionRefusedError(111, 'Connection refused')\n"
                   "101.0 0.3 200 0 /api/search\tanswer is not JSON\n"
                   "101.5 0.1 2")  # cut short as the process stopped
    a = read_answers([log, tmp_path / "missing.log"], epoch_to_monotonic=100.0)
    assert a.started == [0.0, 0.5, 1.0]
    # a 200 the user marked failed is a failure, not an answer
    assert a.answers == [(0, 0.1), (200, 0.2), (0, 0.3)]
    assert a.names == ["/api/auth/login", "/api/cases", "/api/search"]
    assert first_error(log, tmp_path / "none.log") == "ConnectionRefusedError(111, 'Connection refused')"
    assert a.summary().startswith("3 requests, 2 not 200")
