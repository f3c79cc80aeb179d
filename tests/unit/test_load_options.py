"""The load run's options refuse what is not a share in one line, before anything starts."""

from __future__ import annotations

import pytest

from loadtests import run


@pytest.mark.parametrize("given", ["1.5", "-0.1", "half"])
def test_a_web_share_that_is_not_a_share_is_refused_in_one_line(given: str, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        run.parser().parse_args(["--web-share", given])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--web-share" in err and "from 0 to 1" in err and "Traceback" not in err


def test_a_web_share_is_handed_to_locust(tmp_path) -> None:
    args = run.parser().parse_args(["--web-share", "0.5"])
    cmd = run.locust_command("https://127.0.0.1:1", tmp_path, args, tmp_path / "testdata.json")
    assert cmd[cmd.index("--kntc-web-share") + 1] == "0.5"
