"""kntc-dr's contract with operators: one-line errors with meaningful exit codes, parsing of targets
and of pgBackRest's output. Runs the real binaries; no sandbox needed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dr.config import DrConfig
from dr.errors import ConfigError
from dr.pgbackrest import PgBackRest, PgBackRestError, RestoreTarget, parse_verify, write_conf
from tests.dr.conftest import work_dir

pytestmark = pytest.mark.drill
KNTC_DR = str(Path(sys.executable).parent / "kntc-dr")


def kntc_dr(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    pre = ["--config", str(config)] if config else []
    return subprocess.run([KNTC_DR, *pre, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def work(request: pytest.FixtureRequest) -> Path:
    # Not under /tmp/pytest-of-root (mode 0700): pgBackRest runs as postgres and must read its config.
    d = work_dir() / "cli" / request.node.name[:40]
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


@pytest.fixture
def empty_repo_config(work: Path) -> Path:
    tmp_path = work
    (tmp_path / "dr.toml").write_text('stanza = "khong-co"\nrepo_path = "repo"\npg_path = "pg"\ncipher = "none"\n'
                                      'state_dir = "state"\npg_socket = "sock"\npg_port = 55478\n')
    return tmp_path / "dr.toml"


def test_pgbackrest_failure_is_one_line_with_its_code_as_exit_status(empty_repo_config: Path) -> None:
    assert kntc_dr("configure", config=empty_repo_config).returncode == 0
    res = kntc_dr("check", config=empty_repo_config)
    assert res.returncode not in (0, 1)
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stderr.startswith(f"kntc-dr: pgBackRest check thất bại / failed [{res.returncode:03d} ")


def test_wrapper_raises_a_typed_error(work: Path) -> None:
    tmp_path = work
    cfg = DrConfig(stanza="khong-co", repo_path=tmp_path / "repo", pg_path=tmp_path / "pg", cipher="none",
                   state_dir=tmp_path / "state", pg_socket=tmp_path / "sock", pg_port=55478)
    write_conf(cfg)
    with pytest.raises(PgBackRestError) as exc:
        PgBackRest(cfg).backup("full")
    assert exc.value.code == exc.value.exit_code and exc.value.name != "unknown"
    assert "\n" not in str(exc.value)


def test_missing_config_file_is_exit_2() -> None:
    res = kntc_dr("info", config=Path("/nonexistent/dr.toml"))
    assert res.returncode == 2 and res.stderr.startswith("kntc-dr: không thấy tệp cấu hình / config file not found")


def test_unknown_config_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dr.toml").write_text('stanza = "a"\nrepo_path = "r"\npg_path = "p"\nrepo_pth = "typo"\n')
    res = kntc_dr("info", config=tmp_path / "dr.toml")
    assert res.returncode == 2 and "repo_pth" in res.stderr


@pytest.mark.parametrize(("spec", "options"), [
    ("latest", ["--type=default"]),
    ("immediate", ["--type=immediate", "--target-action=promote"]),
    ("name:truoc-nhap", ["--type=name", "--target=truoc-nhap", "--target-action=promote"]),
    ("time:2026-11-23T14:05:00+07:00", ["--type=time", "--target=2026-11-23 07:05:00.000000+00",
                                        "--target-action=promote"]),
])
def test_restore_targets(spec: str, options: list[str]) -> None:
    assert RestoreTarget.parse(spec).options() == options


@pytest.mark.parametrize("spec", ["time:2026-11-23T14:05:00", "time:hôm qua", "yesterday", "name:"])
def test_bad_restore_targets_are_refused(spec: str) -> None:
    with pytest.raises(ConfigError):
        RestoreTarget.parse(spec)


# Printed by pgBackRest 2.45 `verify --output=text --verbose` after one byte range of one file of the
# backup was flipped; its exit status was 0.
DAMAGED = """stanza: x
status: error
  archiveId: 15-1, total WAL checked: 4, total valid WAL: 4
    missing: 0, checksum invalid: 0, size invalid: 0, other: 0
  backup: 20261123-180225F, status: invalid, total files checked: 964, total valid files: 963
    missing: 0, checksum invalid: 1, size invalid: 0, other: 0
"""


def test_verify_output_with_damage_is_a_failure_even_with_exit_0() -> None:
    v = parse_verify(DAMAGED)
    assert not v.ok
    assert any("checksum invalid 1" in p for p in v.problems)
    assert parse_verify(DAMAGED.replace("status: error", "status: ok").replace("invalid: 1", "invalid: 0")
                        .replace("status: invalid", "status: valid").replace("963", "964")).ok
