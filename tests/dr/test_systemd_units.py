"""The systemd units in dr/systemd/ are valid and run commands that exist."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.drill
UNITS = Path(__file__).resolve().parents[2] / "dr" / "systemd"


def test_units_verify_with_systemd_analyze(tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze missing: apt-get install systemd")
    venv_bin = Path(sys.executable).parent
    for unit in UNITS.glob("kntc-dr-*"):
        # The units name /opt/kntc/.venv: point them at this checkout's venv for the check.
        (tmp_path / unit.name).write_text(unit.read_text().replace("/opt/kntc/.venv/bin", str(venv_bin)))
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", "kntc-dr-backup@full.service",
                          "kntc-dr-backup@incr.service", "kntc-dr-verify-restore.service",
                          "kntc-dr-backup-full.timer", "kntc-dr-backup-incr.timer"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_backup_template_starts_the_verification_after_success() -> None:
    text = (UNITS / "kntc-dr-backup@.service").read_text()
    assert "OnSuccess=kntc-dr-verify-restore.service" in text
    assert "kntc-dr backup --type %i" in text
