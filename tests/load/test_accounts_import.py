"""The timed import's plumbing, without a database: the timing wrapper, reading the importer's
output, keeping the initial passwords private, and the commands sent to the lab's migrate host."""

from __future__ import annotations

import csv
import json
import stat
import subprocess
import sys
from pathlib import Path

from loadtests import accounts_import, timed


def test_the_wrapper_reports_the_childs_cpu_and_peak_memory_and_passes_its_output_and_code() -> None:
    code = "x = bytearray(64 * 1024 * 1024); sum(range(3 * 10**6)); print('created 3, unchanged 1'); raise SystemExit(4)"
    res = subprocess.run([sys.executable, str(accounts_import.TIMED), "--", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 4
    lines = res.stdout.splitlines()
    assert lines[0] == "created 3, unchanged 1" and lines[-1].startswith(timed.MARK)
    figures = json.loads(lines[-1][len(timed.MARK):])
    assert figures["exit_code"] == 4 and figures["peak_rss_mb"] >= 64 and figures["cpu_seconds"] > 0
    assert figures["wall_seconds"] >= figures["cpu_seconds"] * 0.5


def test_the_importers_counts_and_seconds_are_read_from_its_output() -> None:
    out = ("checking rows ━━━━ 100%\ncreated 162,318, unchanged 0\nimport_seconds=312.4\n"
           'TIMED {"exit_code": 0, "wall_seconds": 320.0, "user_seconds": 250.0, "system_seconds": 5.0, '
           '"cpu_seconds": 255.0, "peak_rss_mb": 1800.5}\n')
    got = accounts_import.parse(out)
    assert got["created"] == 162_318 and got["unchanged"] == 0 and got["import_seconds"] == 312.4
    assert got["peak_rss_mb"] == 1800.5 and got["cpu_seconds"] == 255.0


def test_the_report_has_accounts_seconds_rate_memory_and_cpu(tmp_path: Path) -> None:
    roster = tmp_path / "r.csv"
    roster.write_text("ma_don_vi,ho_ten,vai_tro\nX00004,Nguyễn Văn An,reception\nX00004,Lê Thị Hoa,head\n")
    out = ('created 2, unchanged 0\nimport_seconds=0.5\nTIMED {"exit_code": 0, "wall_seconds": 1.0, '
           '"user_seconds": 0.6, "system_seconds": 0.1, "cpu_seconds": 0.7, "peak_rss_mb": 90.0}\n')
    result = accounts_import.outcome("local: test", roster, out)
    assert result.rows == 2 and result.accounts_per_s == 4.0
    md = accounts_import.write_report(result, tmp_path).read_text()
    assert "| 2 | 0 | 0.5 | 1.0 | 4.0 | 0.7 (0.6 + 0.1) | 90 MB | 0 |" in md
    assert json.loads((tmp_path / "accounts-import.json").read_text())["peak_rss_mb"] == 90.0


def test_initial_passwords_of_several_imports_are_kept_in_one_private_file(tmp_path: Path) -> None:
    into = tmp_path / "credentials.csv"
    for n, names in enumerate((["a.x1", "b.x1"], ["c.x1"])):
        new = tmp_path / f"new{n}.csv"
        with new.open("w", encoding="utf-8-sig", newline="") as f:  # the importer writes a BOM for Excel
            w = csv.writer(f)
            w.writerow(accounts_import.CREDENTIALS_HEADER)
            w.writerows([u, f"Cán bộ {u}", "X1", "AAAA-BBBB"] for u in names)
        accounts_import.merge_credentials(new, into)
        assert not new.exists()
    assert stat.S_IMODE(into.stat().st_mode) == 0o600
    with into.open(encoding="utf-8") as f:
        assert [r["username"] for r in csv.DictReader(f)] == ["a.x1", "b.x1", "c.x1"]


def test_the_lab_import_runs_as_root_with_admin_env_and_checks_host_keys() -> None:
    remote = accounts_import.Remote("dc-app1", "ops", "10.231.1.21", "/k/id", ("-o", "UserKnownHostsFile=/k/kh"),
                                    True, "/opt/kntc/current/bin/kntc")
    argv = remote.ssh("set -a && . /etc/kntc/admin.env && kntc accounts import x.csv", root=True)
    assert argv[0] == "ssh" and "StrictHostKeyChecking=yes" in argv and "UserKnownHostsFile=/k/kh" in argv
    assert argv[-2] == "ops@10.231.1.21" and argv[-1].startswith("sudo -n bash -c ")
    assert remote.ssh("mktemp -d")[-1] == "mktemp -d"  # the private folder is the SSH user's
    assert remote.scp("a.csv", remote.path("/w/x/a.csv"))[-2:] == ["a.csv", "ops@10.231.1.21:/w/x/a.csv"]
    cmd = accounts_import.import_command(remote.kntc, "/w/x/a.csv", "/w/x/c.csv", "why", dry_run=True)
    assert cmd == ["/opt/kntc/current/bin/kntc", "accounts", "import", "/w/x/a.csv", "--credentials",
                   "/w/x/c.csv", "--reason", "why", "--dry-run"]
