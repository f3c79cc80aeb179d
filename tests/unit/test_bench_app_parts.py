"""`bench_app` splits the case file's SQL into the session statement every request pays and the
rest: the session-only script is the case file's own opening, so the two cannot drift apart, and
the summary prints each part against pgbench -S."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests import bench_app


def test_the_session_script_is_the_case_files_opening_then_commit() -> None:
    whole = (bench_app.SCRIPTS / "case_file.sql").read_text()
    session = bench_app.session_only_script("case_file.sql").read_text()
    opening, _, rest = session.rpartition("\\endpipeline\n")
    assert whole.startswith(opening + "\\endpipeline\n")
    assert rest == "COMMIT;\n"
    assert "kntc.session_resume(:token" in opening
    assert "kntc.party" not in session  # none of the document's own SQL


def test_a_script_without_its_session_statement_is_refused_in_one_line(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bare.sql").write_text("BEGIN;\nSELECT 1;\nCOMMIT;\n")
    monkeypatch.setattr(bench_app, "SCRIPTS", tmp_path)
    with pytest.raises(bench_app.StackError, match="no \\\\endpipeline"):
        bench_app.session_only_script("bare.sql")


def test_the_summary_prints_each_part_as_a_share_of_select_only(capsys: pytest.CaptureFixture[str]) -> None:
    case = bench_app.Result("case file   GET /api/cases/{code}", 500.0, 20.0, 60.0, 90.0, 0, db_tps=1000.0,
                            parts={"session statement alone": 12000.0, "without row-level security": 2000.0})
    text = bench_app.print_summary([case], 80000.0, "abc1234")
    lines = text.splitlines()
    session = next(line for line in lines if "session statement alone" in line)
    assert session.split()[-2:] == ["12000.0", "15.0%"]
    unpoliced = next(line for line in lines if "without row-level security" in line)
    assert unpoliced.split()[-2:] == ["2000.0", "2.5%"]
