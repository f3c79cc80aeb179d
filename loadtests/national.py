"""National-size test data in one command: every unit, the national roster, N case files with their work.

`make national-data` (N=5,000,000) or `make national-data N=20000`. Into its own database
(`kntc_national_<N>`) of the embedded cluster, through the operator's commands:

1. the database (as the cluster superuser), `kntc migrate`, `kntc seed-units`: every unit;
2. the national roster (`loadtests.roster`: 162,318 accounts with the capacity model's role mix)
   imported by `kntc accounts import`; the roster and its initial passwords kept beside the cluster
   (`<pg-root>/national/`, mode 0700) for the load suite's first logins;
3. `kntc generate --national`: the case files of the duplicate benchmark's generator, with the
   timeline, statutory time limits, assignments and receptions officers record on them, loaded
   by COPY as the owner with every constraint, trigger and row-level security policy in place
   (the secondary indexes built after the load), under a progress bar;
4. the per-officer request budgets lifted, as for every load database, and the figures: wall time
   per step, rows per second, rows per table and the database's size (also in
   loadtests/reports/national-<N>.json).

Each step is skipped when done; run again after a stop and the load resumes. Then
`make load LOAD_DATABASE=kntc_national_<N>`, `make bench-app LOAD_DATABASE=…` and
`make bench-reports LOAD_DATABASE=…` run against it.

`--lab` (`make national-data-lab N=…`) loads the lab's own database instead, through the path a
site's data takes: the roster by `loadtests.accounts_import --lab`, the case files by
`kntc generate --national` on the migrate host with its admin.env (the owner's DSN through the
site's balancer), so every row is replicated to the DC's members and the DR's standby cluster and
archived by pgBackRest as production data would be. The lab holds five copies of the database
(three DC members, two DR members) on this machine's disk: N is what five copies leave room for.
Then `make load HOST=https://10.231.1.21` (after `make lab-capacity-window`) runs on it.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loadtests.accounts_import import Remote, merge_credentials, migrate_host
from loadtests.bench_dedup import bench_env
from loadtests.stack import BIN, REPORTS, ROOT, StackError, kntc, prepare_database

ROSTER_PART = 10_000
REASON = "Danh sách cán bộ toàn quốc cho dữ liệu kiểm thử / national roster for the test data"
# Rows the load writes itself, and those the database's triggers write for them.
TABLES = ("case_file", "party", "petition", "reception", "case_event", "case_deadline", "case_assignment",
          "audit_log", "dedup_key", "exchange_event", "account")


def owner(env: dict[str, str]) -> Any:
    import psycopg
    from psycopg.rows import dict_row

    return psycopg.connect(env["KNTC_ADMIN_DATABASE_URL"], autocommit=True, row_factory=dict_row)


def count(env: dict[str, str], sql: str) -> int:
    with owner(env) as conn:
        row = conn.execute(sql).fetchone()
        return int(next(iter(row.values()))) if row else 0


def import_roster(env: dict[str, str], accounts: int, seed: int, province: str | None, state: Path) -> float:
    """The roster made (once per size and seed) and imported; seconds taken, 0 when already there."""
    if count(env, "SELECT count(*) FROM kntc.account WHERE NOT 'unit_admin' = ANY (roles)") >= accounts * 0.99:
        return 0.0
    roster = state / f"roster-{accounts}-seed{seed}{'-' + province if province else ''}.csv"
    if not roster.exists():
        cmd = [sys.executable, "-m", "loadtests.roster", "--accounts", str(accounts), "--seed", str(seed),
               "--out", str(roster)]
        if province:
            cmd += ["--province", province]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
        if res.returncode != 0:
            raise StackError(f"the roster could not be made: {(res.stderr or res.stdout).strip()[-300:]}")
    t0 = time.monotonic()
    credentials = state / f"credentials-{database_of(env)}.csv"
    # A part at a time, as personnel offices send them: each import is one transaction, and one of
    # 162,318 rows outlasts the owner's idle-in-transaction limit on a busy machine (the initial
    # passwords are hashed between its statements). Importing a part again changes nothing.
    for part in split(roster, state / "parts", ROSTER_PART):
        new = part.with_suffix(".credentials.csv")
        kntc("accounts", "import", str(part), "--credentials", str(new), "--reason", REASON, env=env, timeout=3600)
        merge_credentials(new, credentials)
    return time.monotonic() - t0


def split(roster: Path, folder: Path, rows: int) -> list[Path]:
    """The roster as files of at most `rows` rows each, with its header."""
    folder.mkdir(exist_ok=True)
    with roster.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        body = list(reader)
    parts = []
    for k in range(0, len(body), rows):
        part = folder / f"{roster.stem}-part{k // rows:03d}.csv"
        with part.open("w", encoding="utf-8", newline="") as out:
            w = csv.writer(out)
            w.writerow(header)
            w.writerows(body[k:k + rows])
        parts.append(part)
    return parts


def database_of(env: dict[str, str]) -> str:
    return env["KNTC_ADMIN_DATABASE_URL"].rsplit("/", 1)[1].split("?", 1)[0]


def generate(env: dict[str, str], cases: int, seed: int, writers: int, province: str | None) -> dict[str, float]:
    """`kntc generate --national`, its progress bar on this terminal; the figures it printed."""
    cmd = [str(BIN / "kntc"), "generate", "--national", "--cases", str(cases), "--seed", str(seed), "--writers",
           str(writers)]
    if province:
        cmd += ["--province", province]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    figures: dict[str, float] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.startswith("national_load "):
            figures = {k: float(v) for k, v in (kv.split("=", 1) for kv in line.split()[1:])}
    if proc.wait() != 0:
        raise StackError("kntc generate --national failed (above); run the same command again to resume")
    return figures


def sizes(env: dict[str, str]) -> dict[str, Any]:
    with owner(env) as conn:
        rows = {r["relname"]: int(r["n"]) for r in conn.execute(
            "SELECT relname, greatest(reltuples, 0)::bigint AS n FROM pg_class "
            "WHERE relnamespace = 'kntc'::regnamespace AND relkind = 'r' AND relname = ANY (%s)", (list(TABLES),))}
        for table in ("case_file", "account"):  # exact: the figures quoted
            rows[table] = conn.execute(f"SELECT count(*) AS n FROM kntc.{table}").fetchone()["n"]
        size = conn.execute("SELECT pg_database_size(current_database()) AS n").fetchone()["n"]
    return {"rows": {t: rows.get(t, 0) for t in TABLES}, "bytes": size}


# Sizes as the owner sees them, printed by the migrate host's Python (the release's, with psycopg).
_LAB_SIZES = """
import json, os, psycopg
with psycopg.connect(os.environ["KNTC_ADMIN_DATABASE_URL"], connect_timeout=10) as conn:
    rows = dict(conn.execute("SELECT relname, greatest(reltuples, 0)::bigint FROM pg_class "
                             "WHERE relnamespace = 'kntc'::regnamespace AND relkind = 'r'").fetchall())
    for t in ("case_file", "account"):
        rows[t] = conn.execute(f"SELECT count(*) FROM kntc.{t}").fetchone()[0]
    size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
print(json.dumps({"rows": rows, "bytes": size}))
"""


def on_lab(remote: Remote, command: str, *, stream: bool = False, timeout: float = 600) -> str:
    """`command` as root on the migrate host with the owner's DSN (admin.env) in its environment."""
    script = f"set -a && . /etc/kntc/admin.env && set +a && cd /tmp && {command}"
    if not stream:
        res = subprocess.run(remote.ssh(script, root=True), capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise StackError(f"{remote.name}: {(res.stderr or res.stdout).strip()[-300:]}")
        return res.stdout
    proc = subprocess.Popen(remote.ssh(script, root=True), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        out.append(line)
    if proc.wait() != 0:
        raise StackError(f"{remote.name}: the command failed (above); run the same command again to resume")
    return "".join(out)


def lab_sizes(remote: Remote) -> dict[str, Any]:
    python = remote.kntc.rsplit("/", 1)[0] + "/python"
    doc = json.loads(on_lab(remote, f"{python} -c {shlex.quote(_LAB_SIZES)}", timeout=120).strip().splitlines()[-1])
    return {"rows": {t: int(doc["rows"].get(t, 0)) for t in TABLES}, "bytes": int(doc["bytes"])}


def lab_main(args: argparse.Namespace) -> int:
    """The national data set in the lab's database (see the module's text)."""
    t_all = time.monotonic()
    try:
        remote = migrate_host(None, None)
        before = lab_sizes(remote)
        print(f"the lab's database on {remote.name}: {before['rows']['case_file']:,} case files, "
              f"{before['rows']['account']:,} accounts, {before['bytes'] / 2**30:.1f} GiB", flush=True)
        roster_s = 0.0
        if before["rows"]["account"] < args.accounts * 0.99:
            roster = ROOT / "loadtests" / "reports" / "roster" / f"roster-{args.accounts}-seed{args.roster_seed}.csv"
            roster.parent.mkdir(parents=True, exist_ok=True)
            if not roster.exists():
                subprocess.run([sys.executable, "-m", "loadtests.roster", "--accounts", str(args.accounts), "--seed",
                                str(args.roster_seed), "--out", str(roster)], cwd=ROOT, check=True, timeout=600)
            t0 = time.monotonic()
            subprocess.run([sys.executable, "-m", "loadtests.accounts_import", str(roster), "--lab", "--credentials",
                            str(roster.parent / "credentials-lab.csv")], cwd=ROOT, check=True, timeout=7200)
            roster_s = time.monotonic() - t0
        out = on_lab(remote, f"{shlex.quote(remote.kntc)} generate --national --cases {args.cases} --seed {args.seed} "
                             f"--writers {args.writers}", stream=True)
        figures = {k: float(v) for line in out.splitlines() if line.startswith("national_load ")
                   for k, v in (kv.split("=", 1) for kv in line.split()[1:])}
        size = lab_sizes(remote)
    except (StackError, OSError, subprocess.SubprocessError, ValueError) as exc:
        print(f"national-data: {exc}", file=sys.stderr)
        return 1
    wall = time.monotonic() - t_all
    print(f"\nthe lab: {size['rows']['case_file']:,} case files, {size['rows']['account']:,} accounts; "
          f"database {size['bytes'] / 2**30:.1f} GiB (×5 copies in the lab); whole command {wall:.0f} s")
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"national-lab-{args.cases}.json").write_text(json.dumps({
        "target": f"lab ({remote.name})", "cases": args.cases, "seed": args.seed, "accounts": args.accounts,
        "wall_seconds": wall, "roster_import_seconds": roster_s, "generate": figures, **size}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=5_000_000)
    p.add_argument("--seed", type=int, default=20180315, help="same seed, same case files")
    p.add_argument("--accounts", type=int, default=162_318, help="roster size (162,318: the national roster)")
    p.add_argument("--roster-seed", type=int, default=1)
    p.add_argument("--province", help="a one-province data set (e.g. T01): its roster, its units' cases")
    p.add_argument("--writers", type=int, default=2, help="connections loading at once")
    p.add_argument("--database", help="default: kntc_national_<N>")
    p.add_argument("--pg-root", type=Path, default=ROOT / ".data" / "local")
    p.add_argument("--pg-port", type=int, default=55432)
    p.add_argument("--state", type=Path, help="rosters and initial passwords (default: <pg-root>/national)")
    p.add_argument("--lab", action="store_true", help="into the lab's own database, through the migrate host")
    args = p.parse_args(argv)
    if args.cases < 1 or args.accounts < 1:
        p.error("--cases and --accounts must be positive")
    if args.lab:
        if args.province or args.database:
            p.error("--lab loads the lab's own database with the national roster: no --province or --database")
        return lab_main(args)
    database = args.database or f"kntc_national_{args.cases}"
    state: Path = args.state or args.pg_root / "national"
    t_all = time.monotonic()
    try:
        state.mkdir(parents=True, exist_ok=True)
        state.chmod(0o700)
        env = bench_env(args.pg_root.resolve(), args.pg_port, database)
        print(f"database {database} on 127.0.0.1:{args.pg_port}", flush=True)
        t0 = time.monotonic()
        prepare_database(env)
        schema_s = time.monotonic() - t0
        print(f"schema and units: {schema_s:.0f} s", flush=True)
        roster_s = import_roster(env, args.accounts, args.roster_seed, args.province, state)
        if roster_s:
            print(f"roster of {args.accounts:,} accounts imported: {roster_s:.0f} s "
                  f"({args.accounts / roster_s:,.0f} accounts/s)", flush=True)
        figures = generate(env, args.cases, args.seed, args.writers, args.province)
        size = sizes(env)
    except (StackError, OSError) as exc:
        print(f"national-data: {exc}", file=sys.stderr)
        return 1
    wall = time.monotonic() - t_all
    load_s = figures.get("load_seconds", 0.0)
    written = sum(size["rows"].values()) - size["rows"]["account"]
    print(f"\n{database}: {size['rows']['case_file']:,} case files, {size['rows']['account']:,} accounts; "
          f"database {size['bytes'] / 2**30:.1f} GiB")
    print("rows: " + ", ".join(f"{t} {n:,}" for t, n in size["rows"].items()))
    print(f"load (COPY, with the triggers' rows): {load_s:.0f} s, {written / max(load_s, 1):,.0f} rows/s; "
          f"indexes built after: {figures.get('index_seconds', 0):.0f} s; vacuum analyze: "
          f"{figures.get('vacuum_seconds', 0):.0f} s; whole command: {wall:.0f} s")
    print(f"use it: make load LOAD_DATABASE={database}  (also bench-app, bench-reports)")
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"national-{args.cases}.json").write_text(json.dumps({
        "database": database, "cases": args.cases, "seed": args.seed, "accounts": args.accounts, "wall_seconds": wall,
        "roster_import_seconds": roster_s, "generate": figures, **size}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
