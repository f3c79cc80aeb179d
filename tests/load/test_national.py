"""The national test data (`make national-data`) at a tiny size, checked as the application sees it:
an imported officer logs in through the real API and finds their unit's inbox, codes are gapless,
each case's timeline leads to its status, and each accepted denunciation's time limits agree with
its events (the app's own recount finds nothing to correct)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from psycopg.rows import dict_row

from core_app.localdb import LocalCluster
from loadtests.officers import Journal, Officer, set_up
from loadtests.stack import with_database
from tests.conftest import ROOT, running_server

CASES = 2000
DATABASE = "kntc_national_smoke"


@pytest.fixture(scope="module")
def national(cluster: LocalCluster, pg_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, Any]:
    """One province's roster (2,000 accounts) and 2,000 case files in a database of their own."""
    state = tmp_path_factory.mktemp("national")
    cluster.ensure_database(DATABASE, fresh=True)
    res = subprocess.run([sys.executable, "-m", "loadtests.national", "--cases", str(CASES), "--accounts", "2000",
                          "--province", "T01", "--database", DATABASE, "--pg-root", str(cluster.root),
                          "--pg-port", str(cluster.port), "--state", str(state)],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    env = with_database({k: v for k, v in pg_env.items() if not k.startswith("_")}, DATABASE)
    return {"env": env, "out": res.stdout, "credentials": state / f"credentials-{DATABASE}.csv"}


@pytest.fixture(scope="module")
def owner(national: dict[str, Any]) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with psycopg.connect(national["env"]["KNTC_ADMIN_DATABASE_URL"], row_factory=dict_row, autocommit=True) as conn:
        yield conn


def test_the_command_loads_every_kind_of_row_and_says_how_fast(national: dict[str, Any],
                                                                owner: psycopg.Connection) -> None:
    assert "rows/s" in national["out"] and "GiB" in national["out"]
    counts = {t: owner.execute(f"SELECT count(*) AS n FROM kntc.{t}").fetchone()["n"]
              for t in ("case_file", "party", "petition", "case_event", "case_deadline", "case_assignment",
                        "reception", "account", "audit_log", "dedup_key")}
    assert counts["case_file"] == CASES and counts["account"] >= 2000
    assert all(n > 0 for n in counts.values()), counts
    # Every unit of the country is there, not only the province's.
    assert owner.execute("SELECT count(*) AS n FROM kntc.unit WHERE code ~ '^X[0-9]+$' AND valid_to IS NULL"
                         ).fetchone()["n"] > 3000


def test_case_codes_are_gapless_per_unit_and_year(owner: psycopg.Connection) -> None:
    gaps = owner.execute("""
        SELECT unit, year, count(*) AS n, max(seq) AS last FROM (
            SELECT substring(code FROM '^(.*)-[0-9]{4}-[0-9]+$') AS unit, substring(code FROM '-([0-9]{4})-[0-9]+$')
                   AS year, substring(code FROM '([0-9]+)$')::int AS seq FROM kntc.case_file) c
         GROUP BY unit, year HAVING count(*) <> max(seq) OR min(seq) <> 1""").fetchall()
    assert gaps == []
    assert counters_off(owner) == []


def counters_off(owner: psycopg.Connection) -> list[dict[str, Any]]:
    """Units whose code counter is not at their last case's number: the next case recorded there
    would not take the next number."""
    return owner.execute("""
        SELECT k.unit_id, k.year, k.last_seq, x.last FROM kntc.case_code_counter k
          JOIN (SELECT receiving_unit_id AS unit_id, extract(year FROM received_on)::int AS year,
                       max(substring(code FROM '([0-9]+)$')::int) AS last FROM kntc.case_file GROUP BY 1, 2) x
            ON x.unit_id = k.unit_id AND x.year = k.year
         WHERE k.last_seq <> x.last""").fetchall()


def test_the_same_load_again_resumes_and_changes_nothing(national: dict[str, Any], owner: psycopg.Connection
                                                         ) -> None:
    before = owner.execute("SELECT count(*) AS n, max(id) AS last FROM kntc.case_event").fetchone()
    res = subprocess.run([str(Path(sys.executable).parent / "kntc"), "generate", "--national", "--cases", str(CASES),
                          "--seed", "20180315", "--province", "T01"],
                         env={**os.environ, **national["env"]}, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert f"{CASES:,} case files were loaded by an earlier run (skipped)" in res.stdout, res.stdout
    assert owner.execute("SELECT count(*) AS n, max(id) AS last FROM kntc.case_event").fetchone() == before
    assert counters_off(owner) == []


def test_each_timeline_leads_to_its_case_status_and_version(owner: psycopg.Connection) -> None:
    broken = owner.execute("""
        WITH e AS (SELECT case_id, action, from_status, to_status, actor_id,
                          lag(to_status) OVER (PARTITION BY case_id ORDER BY id) AS before,
                          lag(at) OVER (PARTITION BY case_id ORDER BY id) AS before_at, at,
                          row_number() OVER (PARTITION BY case_id ORDER BY id DESC) AS from_end
                     FROM kntc.case_event)
        SELECT c.code, e.action FROM e JOIN kntc.case_file c ON c.id = e.case_id
         WHERE e.from_status IS DISTINCT FROM coalesce(e.before, e.from_status) OR e.at < e.before_at
            OR (e.from_end = 1 AND e.to_status <> c.status) OR e.actor_id IS NULL""").fetchall()
    assert broken == []
    versions = owner.execute("""
        SELECT c.code FROM kntc.case_file c
         WHERE c.version <> 1 + (SELECT count(*) FROM kntc.case_event e WHERE e.case_id = c.id
                                   AND e.action NOT IN ('receive', 'assign', 'add_petition'))""").fetchall()
    assert versions == []


def test_every_accepted_denunciation_has_its_time_limits_as_its_events_say(
        owner: psycopg.Connection, national: dict[str, Any]) -> None:
    rows = owner.execute("""
        SELECT c.code, c.accepted_on, c.resolved_on,
               (SELECT min((e.at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date) FROM kntc.case_event e
                 WHERE e.case_id = c.id AND e.action = 'notify_acceptance') AS notified_on,
               jsonb_object_agg(d.rule_code, jsonb_build_array(d.starts_on, d.met_on, d.ended_by)) AS steps
          FROM kntc.case_file c JOIN kntc.case_deadline d ON d.case_id = c.id
         WHERE c.kind = 'denunciation' AND c.accepted_on IS NOT NULL GROUP BY c.id""").fetchall()
    assert len(rows) > 20
    for r in rows:
        s, acc = r["steps"], r["accepted_on"].isoformat()
        assert s["TC-ACCEPT"][1:] == [acc, "accept"], r
        assert s["TC-RESOLVE"][0] == acc and s["TC-NOTIFY"][0] == acc, r
        resolved = r["resolved_on"].isoformat() if r["resolved_on"] else None
        assert s["TC-RESOLVE"][1:] == [resolved, "resolve" if resolved else None], r
        notified = r["notified_on"].isoformat() if r["notified_on"] else None
        assert s["TC-NOTIFY"][1:] == [notified, "notify_acceptance" if notified else None], r
        assert not (resolved and not notified), r
    # What the app's own recount would end as left open by mistake: nothing.
    res = subprocess.run([str(Path(sys.executable).parent / "kntc"), "deadlines", "recount", "--dry-run"],
                         env={**os.environ, **national["env"]}, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "would change: 0 " in res.stdout, res.stdout


def test_about_half_of_the_denouncers_are_protected(owner: psycopg.Connection) -> None:
    r = owner.execute("""
        SELECT count(*) FILTER (WHERE p.identity_protected) AS protected, count(*) AS n,
               count(*) FILTER (WHERE p.identity_protected <> c.denouncer_confidential) AS mismatched
          FROM kntc.party p JOIN kntc.case_file c ON c.id = p.case_id WHERE p.role = 'denouncer'""").fetchone()
    assert r["mismatched"] == 0 and 0.35 < r["protected"] / r["n"] < 0.65, r


def test_an_imported_officer_logs_in_and_sees_the_units_inbox(national: dict[str, Any], owner: psycopg.Connection,
                                                              tmp_path: Path) -> None:
    # A handling officer (no second factor to enrol) of the unit holding most cases in handling.
    unit = owner.execute("""
        SELECT u.id, u.code FROM kntc.case_file c JOIN kntc.unit u ON u.id = c.handling_unit_id
         WHERE c.status = 'in_handling' AND EXISTS (SELECT 1 FROM kntc.account a WHERE a.unit_id = u.id
                                                      AND a.roles = '{handling}' AND a.clearance = 0)
         GROUP BY u.id, u.code ORDER BY count(*) DESC, u.code LIMIT 1""").fetchone()
    with national["credentials"].open(encoding="utf-8-sig") as f:
        initial = {r["username"]: r["initial_password"] for r in csv.DictReader(f)}
    username = owner.execute("SELECT username FROM kntc.account WHERE unit_id = %s AND roles = '{handling}' "
                             "AND clearance = 0 ORDER BY username LIMIT 1", (unit["id"],)).fetchone()["username"]
    expected = [r["code"] for r in owner.execute(
        # Clearance 0: a classified case of the unit stays out of this officer's inbox.
        "SELECT code FROM kntc.case_file WHERE handling_unit_id = %s AND status = 'in_handling' "
        "AND classification = 0 ORDER BY received_on DESC, code DESC", (unit["id"],)).fetchall()]
    with running_server(national["env"], tmp_path / "server.log") as base:
        http = requests.Session()
        officer = set_up(http, base, Officer(username, unit["code"], initial[username]), Journal(lambda _: None))
        token = http.post(base + "/api/auth/login", json=officer.login_body(), timeout=60).json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        got: list[str] = []
        after = None
        while True:
            page = http.get(base + "/api/cases", params={"scope": "unit", "status": "in_handling", "per_page": 200,
                                                         **({"after": after} if after else {})}, timeout=60).json()
            got += [c["code"] for c in page["data"]]
            if not page["has_more"]:
                break
            after = page["next"]
        assert got == expected and got
        # A protected denouncer of the unit shows only to those handling the case.
        hidden = owner.execute("""
            SELECT c.code FROM kntc.case_file c WHERE c.handling_unit_id = %s AND c.denouncer_confidential
               AND c.created_by <> (SELECT id FROM kntc.account WHERE username = %s)
               AND NOT EXISTS (SELECT 1 FROM kntc.case_assignment ca JOIN kntc.account a ON a.id = ca.account_id
                                WHERE ca.case_id = c.id AND a.username = %s) LIMIT 1""",
                               (unit["id"], username, username)).fetchone()
        if hidden:
            case = http.get(f"{base}/api/cases/{hidden['code']}", timeout=60).json()
            assert case["hidden_parties"] and all(p["role"] != "denouncer" for p in case["parties"])


@pytest.mark.parametrize("extra", [["--province", "T01"], ["--database", "kntc_other"]])
def test_the_lab_load_refuses_what_only_a_database_of_its_own_can_take(extra: list[str]) -> None:
    # The lab's database is the sites' own: one roster (the national one) and no second database.
    res = subprocess.run([sys.executable, "-m", "loadtests.national", "--lab", "--cases", "10", *extra],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--lab loads the lab's own database" in res.stderr.splitlines()[-1]
