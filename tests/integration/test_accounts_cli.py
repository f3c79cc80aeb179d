"""`kntc accounts`, as the operator runs it on the migrate host: a roster checked, imported, imported
again; the initial passwords in a file only the operator reads; the lifecycle commands with reasons.
"""

from __future__ import annotations

import csv
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import psycopg

BIN = Path(sys.executable).parent


def kntc(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "kntc"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_roster_from_the_command_line(pg_env: dict[str, str], tmp_path: Path, owner_conn: psycopg.Connection):
    t = secrets.token_hex(3)
    good = tmp_path / "roster.csv"
    good.write_text("unit_code,full_name,username,roles,clearance,email,phone\n"
                    f"X00004,Lý Thị Hoa {t},,reception,0,,\n"
                    f"T01,Mai Văn Khoa,khoa.{t},handling;resolution,1,khoa.{t}@hanoi.gov.vn,+84912000111\n",
                    encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text(encoding="utf-8") + "X00004,Sai Vai Trò,,giam_doc,0,,\n", encoding="utf-8")

    res = kntc(pg_env, tmp_path, "accounts", "import", str(bad))
    assert res.returncode == 1 and "line 4" in res.stderr and "nothing was created" in res.stderr
    assert "Traceback" not in res.stderr
    assert owner_conn.execute("SELECT count(*) AS n FROM kntc.account WHERE username = %s",
                              (f"khoa.{t}",)).fetchone()["n"] == 0

    res = kntc(pg_env, tmp_path, "accounts", "import", str(good), "--dry-run")
    assert res.returncode == 0 and "would create 2" in res.stdout
    creds = tmp_path / "creds.csv"
    res = kntc(pg_env, tmp_path, "accounts", "import", str(good), "--credentials", str(creds), "--reason", "Đợt 1")
    assert res.returncode == 0 and "created 2, unchanged 0" in res.stdout, res.stdout + res.stderr
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    rows = list(csv.DictReader(creds.read_text(encoding="utf-8-sig").splitlines()))
    assert {r["username"] for r in rows} >= {f"khoa.{t}"} and all(len(r["initial_password"]) == 24 for r in rows)
    # Never over an existing file; the same roster again changes nothing.
    again = kntc(pg_env, tmp_path, "accounts", "import", str(good), "--credentials", str(creds))
    assert again.returncode == 1 and "exists" in again.stderr
    again = kntc(pg_env, tmp_path, "accounts", "import", str(good))
    assert again.returncode == 0 and "created 0, unchanged 2" in again.stdout

    res = kntc(pg_env, tmp_path, "accounts", "set-clearance", f"khoa.{t}", "2", "-r", "Bổ nhiệm vị trí mật")
    assert res.returncode == 0 and "clearance: 1 -> 2" in res.stdout
    assert kntc(pg_env, tmp_path, "accounts", "disable", f"khoa.{t}", "-r", "").returncode == 1
    assert kntc(pg_env, tmp_path, "accounts", "disable", "khong.co.ai", "-r", "Thử tài khoản lạ").returncode == 1
    res = kntc(pg_env, tmp_path, "accounts", "list", "--q", f"khoa.{t}", "--initial")
    assert f"khoa.{t}" in res.stdout and "INITIAL PASSWORD" in res.stdout
    entry = owner_conn.execute("SELECT detail FROM kntc.access_log WHERE kind = 'account_change' "
                               "AND detail->>'target' = %s", (f"khoa.{t}",)).fetchone()["detail"]
    assert entry["reason"] == "Bổ nhiệm vị trí mật" and entry["operator"]
