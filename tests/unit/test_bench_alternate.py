"""`bench_alternate` refuses what it cannot compare with one line, before it starts anything."""

from __future__ import annotations

import pytest

from loadtests import bench_alternate


@pytest.mark.parametrize("argv, message", [
    ([], "one of the arguments --other-app --modes --other-env is required"),
    (["--other-env", "task-impl rust"], "each is NAME=VALUE"),
    (["--modes", "--other-app", "."], "not allowed with argument"),
    (["--other-app", "/nonexistent-tree"], "no core_app folder there"),
    (["--modes", "--rounds", "0"], "at least 1"),
])
def test_a_comparison_it_cannot_make_is_one_line_and_exit_2(argv: list[str], message: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        bench_alternate.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1], err
