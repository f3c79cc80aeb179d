"""Application benchmark: each endpoint's HTTP rate against the pgbench rate of the SQL it runs.

For the case file, the inbox, search (when the app has it) and recording a petition it measures
req/s and p50/p95/p99 at a fixed concurrency, then runs the same SQL through pgbench (as the
application role, opening with the session statement that row-level security reads; the reads'
scripts are made from the app's own statements by loadtests/bench_scripts.py) at the same
concurrency, and prints endpoint ÷ database. Two references frame the figures:
`GET /livez` (a trivial JSON answer from the same server and workers: what the framework alone
costs) and pgbench's built-in `-S` (a primary-key lookup on the same cluster). It is a benchmark: it
prints figures and asserts nothing about them.

    python -m loadtests.bench_app                 # local cluster + `kntc serve`, 16 clients, 10 s each
    python -m loadtests.bench_app --host URL      # an app already running (KNTC_DATABASE_URL for pgbench;
                                                  # KNTC_PGBENCH_SELECT_DSN: a database pgbench -i made, for -S)

The local app is served in the app hosts' mode behind PgBouncer (`--mode pooler`, the default: one
statement per round trip, nothing prepared, the waits PgBouncer's connect_query sets given to the
roles), which is what production runs; `--mode pipeline` serves `kntc serve`'s own default straight
to PostgreSQL (pipelined, prepared statements).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import requests
from geventhttpclient import URL, HTTPClient
from psycopg.conninfo import conninfo_to_dict

from core_app.localdb import LocalCluster, LocalDbError
from core_app.settings import OperatorSettings
from core_app.waits import app_waits
from loadtests import bench_scripts, profile_app, statements
from loadtests.officers import Journal, Officer, set_up
from loadtests.stack import REPORTS, ROOT, AppServer, StackError, kntc, local_env, prepare_database
from loadtests.testdata import Api, ensure_admin, new_person_petition, petition_body, record_case
from loadtests.tiers import tree_cpu

PGBENCH = Path(os.environ.get("KNTC_PGBENCH", "/usr/lib/postgresql/15/bin/pgbench"))
# pgbench's scripts, made from the app's statements at each run (loadtests/bench_scripts.py)
SCRIPTS_MADE = REPORTS / "pgbench"
# How the local app talks to PostgreSQL: as on the app hosts behind PgBouncer, or kntc serve's default.
MODES: dict[str, dict[str, str]] = {"pooler": {"KNTC_DATABASE_POOLER": "pgbouncer"}, "pipeline": {}}
PGBIN = PGBENCH.parent
# pgbench -S's own tables live in a database of their own on the same cluster (scale 10: 1 M rows,
# held in shared_buffers like the case files the bench reads).
SELECT_ONLY_DB = "kntc_pgbench"
BENCH_UNIT = "X00008"  # a ward used by nothing else, so the bench's case codes are one contiguous run


@dataclass
class Result:
    endpoint: str
    http_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    db_tps: float | None = None
    # CPU time per request, robust on a shared machine where req/s depends on the neighbours.
    app_cpu_ms: float | None = None
    db_cpu_ms_http: float | None = None
    db_cpu_ms_pgbench: float | None = None
    # pgbench's rate of parts of the endpoint's SQL (the case file: the session statement alone, and
    # the whole script as the tables' owner, whom no policy applies to): where the ratio to -S goes.
    parts: dict[str, float] | None = None
    # From pg_stat_statements on the bench's own cluster (every level tracked), per request: the time
    # of the statements the app sent, and of it the planning, theirs and that of the statements run
    # inside functions and triggers (through PgBouncer nothing is prepared; PL/pgSQL keeps its plans).
    db_statements_ms: float | None = None
    db_planning_ms: float | None = None

    @property
    def ratio(self) -> float | None:
        return self.http_rps / self.db_tps if self.db_tps else None


# The reads measured, as requested (bench_alternate serves the same).
INBOX_PATH = bench_scripts.INBOX_PATH
SEARCH_PATH = bench_scripts.SEARCH_PATH


def case_path(prefix: str, lo: int, hi: int) -> Callable[[int], str]:
    """The i-th request's case file: the bench's cases in a stride, so that each client reads others."""
    span = hi - lo + 1
    return lambda i: f"/api/cases/{prefix}{lo + (i * 7919) % span:06d}"


def pct(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


Body = bytes | Callable[[Any, dict[str, str]], bytes] | None


def http_bench(base: str, token: str | list[str], method: str, path: Callable[[int], str], body: Body,
               concurrency: int, seconds: float, warmup: float = 2.0,
               meters: tuple[Callable[[], float], ...] = ()) -> tuple[float, list[float], int, list[float]]:
    """Closed loop: `concurrency` clients, each sending its next request when the last answered. A
    callable body is made per request with the same client (the intake's duplicate check), inside
    the measured time."""
    url = URL(base)
    client = HTTPClient(url.host, url.port, concurrency=concurrency, connection_timeout=10, network_timeout=30)
    tokens = [token] if isinstance(token, str) else token
    lat: list[float] = []
    errors = 0
    state = {"measure": False, "stop": False}

    def worker(k: int) -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {tokens[k % len(tokens)]}", "Content-Type": "application/json"}
        i = k
        while not state["stop"]:
            t0 = time.perf_counter()
            try:
                sent = body(client, headers) if callable(body) else body
                r = client.request(method, path(i), body=sent, headers=headers)
                r.read()
                ok = r.status_code < 400
                r.release()
            except Exception:
                ok = False
            if state["measure"]:
                lat.append((time.perf_counter() - t0) * 1000)
                errors += not ok
            i += concurrency

    greenlets = [gevent.spawn(worker, k) for k in range(concurrency)]
    gevent.sleep(warmup)
    before = [m() for m in meters]
    state["measure"] = True
    t0 = time.perf_counter()
    gevent.sleep(seconds)
    state["measure"] = False
    elapsed = time.perf_counter() - t0
    used = [m() - b for m, b in zip(meters, before, strict=True)]
    state["stop"] = True
    gevent.joinall(greenlets, timeout=30)
    client.close()
    return len(lat) / elapsed, sorted(lat), errors, used


def pgbench(dsn: str, script: Path, variables: dict[str, str], concurrency: int, seconds: float
            ) -> tuple[float, int]:
    cmd = [str(PGBENCH), "-n", "-M", "prepared", "-c", str(concurrency), "-j", "2", "-T", str(int(seconds)),
           "-f", str(script)]
    for k, v in variables.items():
        cmd += ["-D", f"{k}={v}"]
    res = subprocess.run([*cmd, dsn], capture_output=True, text=True, timeout=seconds + 120)
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", res.stdout)
    n = re.search(r"number of transactions actually processed: ([0-9]+)", res.stdout)
    if res.returncode != 0 or not m:
        raise StackError(f"pgbench {script} failed: {(res.stderr or res.stdout).strip()[-400:]}")
    return float(m.group(1)), int(n.group(1)) if n else 0


def sql_parts(env: dict[str, str], script: Path, variables: dict[str, str], concurrency: int, seconds: float,
              pipelined: bool) -> dict[str, float]:
    """pgbench's rate of the session statement alone (as the application role) and of the whole script
    as the tables' owner, whom row-level security does not apply to."""
    session_only = bench_scripts.write(SCRIPTS_MADE, "session.sql", pipelined)
    session, _ = pgbench(env["KNTC_DATABASE_URL"], session_only, variables, concurrency, seconds)
    unpoliced, _ = pgbench(env["KNTC_ADMIN_DATABASE_URL"], script, variables, concurrency, seconds)
    return {"session statement alone": round(session, 1), "without row-level security": round(unpoliced, 1)}


def unit_id(dsn: str, code: str) -> int:
    """A current unit's id, read as the application role (units are not behind row-level security)."""
    import psycopg

    with psycopg.connect(dsn, connect_timeout=10) as c:
        row = c.execute("SELECT id FROM kntc.unit WHERE code = %s AND valid_to IS NULL", (code,)).fetchone()
    if row is None:
        raise StackError(f"no current unit {code} in the bench's database")
    return int(row[0])


def has_route(base: str, path: str) -> bool:
    spec = requests.get(base + "/openapi.json", timeout=30).json()
    return path in spec.get("paths", {})


def prepare(base: str, env: dict[str, str] | None, cases: int, password: str) -> dict[str, Any]:
    """Accounts in the bench ward and `cases` case files in it (submitted and accepted: a full timeline)."""
    admin = ensure_admin(base, password, os.environ.get("KNTC_LOAD_ADMIN_USER"),
                         os.environ.get("KNTC_LOAD_ADMIN_PASSWORD"), env, username="bench.admin")
    officers = {}
    who: dict[str, Officer] = {}
    for role in ("reception", "handling"):
        username = f"bench.{role}"
        if env is not None:
            # The operator's command sets the bench's own password (an earlier run's account keeps it).
            kntc("create-account", "--username", username, "--full-name", f"Cán bộ benchmark {role}", "--unit",
                 BENCH_UNIT, "--role", role, env={**env, "KNTC_NEW_PASSWORD": password})
            who[role] = Officer(username, BENCH_UNIT, password)
            officers[role] = Api.as_officer(base, who[role])
            continue
        # Through the API an account starts on an initial password, replaced at its first login.
        got = admin.call("POST", "/api/accounts", ok=(201,), json={
            "username": username, "full_name": f"Cán bộ benchmark {role}", "unit": BENCH_UNIT, "roles": [role],
            "clearance": 0})
        officer = Officer(username, BENCH_UNIT, got["initial_password"], role, initial=got["initial_password"])
        set_up(requests.Session(), base, officer, Journal(lambda _: None))
        who[role] = officer
        officers[role] = Api.as_officer(base, officer)
    rec, hnd = officers["reception"], officers["handling"]
    codes = []
    for i in range(cases):
        made = record_case(rec, petition_body(BENCH_UNIT, i))
        v = rec.call("POST", f"/api/cases/{made['code']}/transitions", json={"action": "submit",
                                                                             "version": made["version"]})["version"]
        if i % 2 == 0:
            hnd.call("POST", f"/api/cases/{made['code']}/transitions", json={"action": "accept", "version": v})
        codes.append(made["code"])
    seqs = sorted(int(c.rsplit("-", 1)[1]) for c in codes)
    if seqs[-1] - seqs[0] + 1 != len(seqs):
        raise StackError(f"someone else recorded cases in {BENCH_UNIT} during the bench: codes are not contiguous")
    prefix = codes[0].rsplit("-", 1)[0] + "-"
    return {"reception": rec, "handling": hnd, "prefix": prefix, "lo": seqs[0], "hi": seqs[-1], "who": who}


def sessions(base: str, first: Api, officer: Officer, n: int) -> list[str]:
    """`n` session tokens of one officer, as `n` officers at their desks would hold: every API call
    counts against its session's budget (one counter row each), and sharing one session would make
    the bench measure the clients queueing on that row instead of the endpoint."""
    tokens = [first.s.headers["Authorization"][7:]]
    for _ in range(n - 1):
        try:
            tokens.append(Api.as_officer(base, officer).s.headers["Authorization"][7:])
        except StackError as exc:
            print(f"  one session for all clients ({exc})")
            break
    return tokens


def run(base: str, dsn: str, env: dict[str, str] | None, concurrency: int, seconds: float, cases: int,
        password: str, app_pid: int | None = None, db_pid: int | None = None,
        profile_dir: Path | None = None, query: statements.Query | None = None, pipelined: bool = False,
        ) -> list[Result]:
    if env is not None:
        # One officer records thousands of petitions, each after its duplicate check: far past an
        # officer's budget of checks (20 a minute). Lifted for the bench, put back after.
        for purpose in ("dedup_minute", "dedup_day"):
            kntc("throttle", "set", purpose, "2000000000", env=env)
    try:
        return _run(base, dsn, env, concurrency, seconds, cases, password, app_pid, db_pid, profile_dir, query,
                    pipelined)
    finally:
        if env is not None:
            kntc("throttle", "set", "dedup_minute", "20", env=env)
            kntc("throttle", "set", "dedup_day", "600", env=env)


def profiled(app_pid: int | None, profile_dir: Path | None, endpoint: str) -> AbstractContextManager[Any]:
    """py-spy on the app's workers while `endpoint` is measured, when asked for (`--profile`)."""
    if profile_dir is None or app_pid is None:
        return nullcontext()
    return profile_app.Profiler(app_pid, profiled_file(profile_dir, endpoint))


def profiled_file(profile_dir: Path, endpoint: str) -> Path:
    return profile_dir / f"{profile_app.label(endpoint).replace(' ', '-')}.txt"


def _run(base: str, dsn: str, env: dict[str, str] | None, concurrency: int, seconds: float, cases: int,
         password: str, app_pid: int | None, db_pid: int | None, profile_dir: Path | None,
         query: statements.Query | None, pipelined: bool) -> list[Result]:
    data = prepare(base, env, cases, password)
    if env is not None:
        # The bench's own ward grows with every run (its intakes and pgbench's): the duplicate check and
        # search are measured against this many case files there, so say it.
        import psycopg

        with psycopg.connect(env["KNTC_ADMIN_DATABASE_URL"], connect_timeout=10) as c:
            held = c.execute("SELECT count(*) FROM kntc.case_file f JOIN kntc.unit u ON u.id = f.handling_unit_id "
                             "WHERE u.code = %s", (BENCH_UNIT,)).fetchone()
        print(f"  the bench's ward {BENCH_UNIT} holds {held[0] if held else 0} case files", flush=True)
    rec_token = data["reception"].s.headers["Authorization"][7:]
    hnd_token = data["handling"].s.headers["Authorization"][7:]
    rec_tokens = sessions(base, data["reception"], data["who"]["reception"], concurrency)
    hnd_tokens = sessions(base, data["handling"], data["who"]["handling"], concurrency)
    prefix, lo, hi = data["prefix"], data["lo"], data["hi"]
    # pgbench sends what the app sends for the handling officer's session (bench_scripts.py)
    as_officer = bench_scripts.variables(hnd_token, unit_id(dsn, BENCH_UNIT))

    def made(name: str) -> Path:
        return bench_scripts.write(SCRIPTS_MADE, name, pipelined)
    people = random.Random()  # noqa: S311 - test data, not a secret

    def record(client: Any, headers: dict[str, str]) -> bytes:
        # An intake is the duplicate check, then the petition recorded under it; each from a new person.
        petition = new_person_petition(BENCH_UNIT, people)
        check = json.dumps({"parties": [{k: p[k] for k in ("full_name", "id_number", "address_unit")}
                                        for p in petition["parties"]], "subject": petition["subject"]},
                           ensure_ascii=False).encode()
        r = client.request("POST", "/api/dedup/check", body=check, headers=headers)
        got = json.loads(r.read())
        r.release()
        return json.dumps({**petition, "dedup_check_id": got.get("check_id")}, ensure_ascii=False).encode()

    plan: list[tuple[str, list[str], str, Callable[[int], str], Body, Path, dict[str, str]]] = [
        ("case file   GET /api/cases/{code}", hnd_tokens, "GET",
         case_path(prefix, lo, hi), None,
         made("case_file.sql"), {**as_officer, "prefix": prefix, "lo": str(lo), "hi": str(hi)}),
        ("inbox       GET /api/cases?scope=unit&status=in_handling", hnd_tokens, "GET",
         lambda i: INBOX_PATH, None, made("inbox.sql"), as_officer),
    ]
    if has_route(base, "/api/search"):
        plan.append(("search      GET /api/search?q=...", hnd_tokens, "GET",
                     lambda i: SEARCH_PATH, None, made("search.sql"), as_officer))
    else:
        print("search: GET /api/search is not in this app yet, skipped")
    plan.append(("intake      POST /api/dedup/check + POST /api/cases", rec_tokens, "POST",
                 lambda i: "/api/cases", record, bench_scripts.write(SCRIPTS_MADE, "record_petition.sql", False),
                 {"token": rec_token, "key": bench_scripts.budget_key(rec_token)}))
    results = []
    # The framework's floor: the same server and workers answering a constant JSON body.
    with profiled(app_pid, profile_dir, TRIVIAL):
        rps, lat, errors, (app_cpu, _) = http_bench(base, hnd_tokens, "GET", lambda i: "/livez", None, concurrency,
                                                    seconds, meters=(lambda: tree_cpu(app_pid), lambda: 0.0))
    trivial = Result(TRIVIAL, round(rps, 1), round(pct(lat, .5), 2), round(pct(lat, .95), 2),
                     round(pct(lat, .99), 2), errors)
    if app_pid and lat:
        trivial.app_cpu_ms = round(1000 * app_cpu / len(lat), 3)
    results.append(trivial)
    print(f"  {TRIVIAL}: {trivial.http_rps} req/s", flush=True)
    for name, token, method, path, body, script, variables in plan:
        if query:
            statements.reset(query, every_level=True)
        with profiled(app_pid, profile_dir, name):
            rps, lat, errors, (app_cpu, db_cpu) = http_bench(
                base, token, method, path, body, concurrency, seconds,
                meters=(lambda: tree_cpu(app_pid), lambda: tree_cpu(db_pid)))
        res = Result(name, round(rps, 1), round(pct(lat, .5), 2), round(pct(lat, .95), 2), round(pct(lat, .99), 2),
                     errors)
        if query and lat:
            used = statements.spent(query)
            res.db_statements_ms = round(used["statements_ms"] / len(lat), 3)
            res.db_planning_ms = round(used["planning_ms"] / len(lat), 3)
        db_before = tree_cpu(db_pid)
        tps, done = pgbench(dsn, script, variables, concurrency, seconds)
        res.db_tps = round(tps, 1)
        if app_pid and lat:
            res.app_cpu_ms = round(1000 * app_cpu / len(lat), 3)
        if db_pid and lat and done:
            res.db_cpu_ms_http = round(1000 * db_cpu / len(lat), 3)
            res.db_cpu_ms_pgbench = round(1000 * (tree_cpu(db_pid) - db_before) / done, 3)
        if script.name.endswith("case_file.sql") and env is not None and env.get("KNTC_ADMIN_DATABASE_URL"):
            res.parts = sql_parts(env, script, variables, concurrency, seconds, pipelined)
        results.append(res)
        print(f"  {name}: {res.http_rps} req/s, database {res.db_tps} tps", flush=True)
    return results


TRIVIAL = "trivial     GET /livez (no database)"


def statements_query(pg_root: Path, port: int, database: str) -> statements.Query | None:
    """The statements of the bench's database (the app's own, or national data's), read as the
    cluster's superuser, every level tracked from now on; None (and a line saying why) where that
    cannot be read: a cluster that does not load pg_stat_statements, made before the embedded
    clusters loaded it."""
    # psql runs as the postgres user, from its own folder: the socket's path must not be relative
    cluster = LocalCluster(pg_root.resolve(), port, database)

    def query(sql: str) -> str:
        return cluster.superuser_psql(sql, cluster.database)

    try:
        statements.reset(query, every_level=True)
    except LocalDbError as exc:
        print(f"  planning not counted: {str(exc).splitlines()[-1]}", flush=True)
        return None
    return query


def select_only_dsn(env: dict[str, str] | None, pg_root: Path | None, pg_port: int) -> str | None:
    """A DSN for pgbench -S on the bench's cluster: the embedded cluster's superuser over its socket
    (the tables made once by pgbench -i), or KNTC_PGBENCH_SELECT_DSN for a cluster elsewhere."""
    given = os.environ.get("KNTC_PGBENCH_SELECT_DSN")
    if given or pg_root is None:
        return given
    socket_dir = pg_root.resolve() / "socket"
    dsn = f"host={socket_dir} port={pg_port} user=postgres dbname={SELECT_ONLY_DB}"
    probe = subprocess.run([str(PGBIN / "psql"), f"host={socket_dir} port={pg_port} user=postgres dbname=postgres",
                            "-Atc", f"SELECT 1 FROM pg_database WHERE datname = '{SELECT_ONLY_DB}'"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        print(f"pgbench -S skipped: {probe.stderr.strip()[-200:]}")
        return None
    if probe.stdout.strip() != "1":
        subprocess.run([str(PGBIN / "createdb"), "-h", str(socket_dir), "-p", str(pg_port), "-U", "postgres",
                        SELECT_ONLY_DB], check=True, capture_output=True, timeout=60)
        subprocess.run([str(PGBENCH), "-i", "-q", "-s", "10", dsn], check=True, capture_output=True, timeout=600)
    return dsn


def select_only(dsn: str | None, concurrency: int, seconds: float) -> float | None:
    if not dsn:
        return None
    res = subprocess.run([str(PGBENCH), "-n", "-S", "-M", "prepared", "-c", str(concurrency), "-j", "2", "-T",
                          str(int(seconds)), dsn], capture_output=True, text=True, timeout=seconds + 120)
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", res.stdout)
    if res.returncode != 0 or not m:
        raise StackError(f"pgbench -S failed: {(res.stderr or res.stdout).strip()[-400:]}")
    return float(m.group(1))


def commit_measured() -> str:
    """The commit of the app measured (with '+dirty' when its tree has uncommitted changes)."""
    def git(*args: str) -> str:
        res = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30)
        return res.stdout.strip()
    head = git("rev-parse", "--short=10", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def pooler_waits(pg_root: Path, port: int) -> None:
    """The waits the app checks behind PgBouncer (core_app/waits.py), set on the roles as the pool's
    connect_query sets them on each server connection."""
    socket_dir = pg_root.resolve() / "socket"
    sql = "".join(f"ALTER ROLE {role} SET {k} = {v};" for role in ("kntc_app", "kntc_auth")
                  for k, v in app_waits(OperatorSettings()).items())
    subprocess.run([str(PGBIN / "psql"), f"host={socket_dir} port={port} user=postgres dbname=postgres",
                    "-qc", sql], check=True, capture_output=True, timeout=60)


def driver_floor(dsn: str, mode: str) -> float | None:
    """The app CPU of a request's round trips carrying nothing (loadtests/driver_floor.py), or None
    and a line saying why."""
    res = subprocess.run([sys.executable, "-m", "loadtests.driver_floor", dsn, "--mode", mode],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    if res.returncode != 0:
        print(f"  driver floor not measured: {(res.stderr or res.stdout).strip()[-300:]}", flush=True)
        return None
    return float(json.loads(res.stdout)["app_cpu_ms"])


DRIVER = "floor: the driver, BEGIN + 2 trivial reads + COMMIT"


def print_summary(results: list[Result], select_tps: float | None, commit: str, mode: str = "",
                  driver_ms: float | None = None) -> str:
    """The goals in one table: each endpoint as a share of the trivial answer, its CPU per request,
    and the case file's SQL against pgbench -S. `driver_ms`: the app CPU of a request's round trips
    with nothing in them, printed under /livez (together, the least a request that reads can cost).

    "stmt ms" is the time a request's statements took from start to end, planning and waiting for
    locks included: well above "DB ms" (CPU), it says the request waited (the bench's clients are one
    officer, so their budget's counter row and the unit's case-code counter are each one row)."""
    base = next((r for r in results if r.endpoint == TRIVIAL), None)
    lines = [f"commit {commit}" + (f", app in {mode} mode" if mode else ""),
             f"{'endpoint':58} {'req/s':>8} {'of /livez':>9} {'app ms':>7} {'DB ms':>7} {'stmt ms':>7} "
             f"{'plan ms':>7} {'SQL tps':>9} {'of -S':>7}"]
    blank = f"{'':7} {'':7} {'':7} {'':9} {'':7}"
    for r in results:
        if r.endpoint != TRIVIAL and driver_ms is not None:
            lines.append(f"{DRIVER:58} {'':8} {'':9} {driver_ms:7.2f} {blank}")
            driver_ms = None
        share = f"{r.http_rps / base.http_rps:.1%}" if base and base.http_rps else "-"
        of_s = f"{r.db_tps / select_tps:.1%}" if r.db_tps and select_tps else "-"

        def ms(v: float | None) -> str:
            return f"{v:7.2f}" if v is not None else "      -"
        lines.append(f"{r.endpoint:58} {r.http_rps:8.1f} {share:>9} {ms(r.app_cpu_ms)} {ms(r.db_cpu_ms_http)} "
                     f"{ms(r.db_statements_ms)} {ms(r.db_planning_ms)} {r.db_tps or 0:9.1f} {of_s:>7}")
        for part, tps in (r.parts or {}).items():
            of_s = f"{tps / select_tps:.1%}" if select_tps else "-"
            lines.append(f"{'  its SQL: ' + part:58} {'':8} {'':9} {'':7} {'':7} {'':7} {'':7} {tps:9.1f} {of_s:>7}")
    lines.append(f"{'pgbench -S (primary-key lookup, same cluster)':58} {'':8} {'':9} {'':7} {'':7} {'':7} {'':7} "
                 f"{select_tps or 0:9.1f} {'100.0%' if select_tps else '-':>7}")
    text = "\n".join(lines)
    print(text)
    return text


def print_table(results: list[Result], concurrency: int, workers: int) -> str:
    lines = [f"concurrency {concurrency}, app workers {workers}, host CPUs {os.cpu_count()} (shared by app, "
             "PostgreSQL and the load generator)",
             f"{'endpoint':58} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'err':>4} "
             f"{'pgbench tps':>11} {'ratio':>6}   CPU ms per request: app | DB (http) | DB (pgbench)"]
    for r in results:
        ratio = f"{r.ratio:.1%}" if r.ratio is not None else "-"

        def ms(v: float | None) -> str:
            return f"{v:6.2f}" if v is not None else "     -"
        lines.append(f"{r.endpoint:58} {r.http_rps:8.1f} {r.p50_ms:7.2f} {r.p95_ms:7.2f} {r.p99_ms:7.2f} "
                     f"{r.errors:4d} {r.db_tps or 0:11.1f} {ratio:>6}   {ms(r.app_cpu_ms)} | "
                     f"{ms(r.db_cpu_ms_http)} | {ms(r.db_cpu_ms_pgbench)}")
    text = "\n".join(lines)
    print(text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", help="an app already running (default: start `kntc serve` on the local cluster)")
    p.add_argument("--pg-root", type=Path, default=ROOT / ".data" / "local", help="embedded cluster folder")
    p.add_argument("--pg-port", type=int, default=55432)
    p.add_argument("--workers", type=int, default=2, help="app worker processes (`kntc serve --workers`)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--cases", type=int, default=200, help="case files the bench creates for itself")
    p.add_argument("--label", default="", help="a note stored with the figures (e.g. 'before', 'after')")
    p.add_argument("--mode", choices=sorted(MODES), default="pooler",
                   help="the local app's connection mode: the app hosts' behind PgBouncer (default) or "
                        "kntc serve's own pipeline mode")
    p.add_argument("--app-pythonpath", type=Path,
                   help="serve the app from another source tree (e.g. an export of the commit before an "
                        "optimisation) to compare before and after on the same database, minutes apart")
    p.add_argument("--profile", action="store_true",
                   help="sample the app's workers with py-spy during each endpoint and print whose code the CPU "
                        "went to (the raw stacks are kept in loadtests/reports/profile-<stamp>/)")
    args = p.parse_args(argv)
    password = os.environ.get("KNTC_LOAD_PASSWORD", "Bench-password-2026")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    profile_dir = REPORTS / f"profile-{stamp}" if args.profile else None
    if args.profile and (args.host or profile_app.Profiler.available()):
        why = profile_app.Profiler.available() or "--profile samples the server this command starts, not one at --host"
        print(f"bench-app: {why}", file=sys.stderr)
        return 2
    try:
        if args.host:
            dsn = os.environ.get("KNTC_DATABASE_URL")
            if not dsn:
                raise StackError("KNTC_DATABASE_URL (the application role's DSN) is needed for pgbench")
            env = dict(os.environ) if os.environ.get("KNTC_ADMIN_DATABASE_URL") else None
            results = run(args.host.rstrip("/"), dsn, env, args.concurrency, args.seconds, args.cases, password)
            select_tps = select_only(select_only_dsn(env, None, args.pg_port), args.concurrency, args.seconds)
            driver_ms = driver_floor(dsn, "pooler")
        else:
            env = {**os.environ, **local_env(args.pg_root, args.pg_port)}
            prepare_database(env)
            if args.mode == "pooler":
                pooler_waits(args.pg_root, args.pg_port)
            extra = dict(MODES[args.mode])
            if args.app_pythonpath:
                extra["PYTHONPATH"] = str(args.app_pythonpath.resolve())
            with AppServer(env, workers=args.workers, log=REPORTS / "bench-server.log", extra_env=extra) as app:
                pid_file = args.pg_root.resolve() / "pg" / "postmaster.pid"
                db_pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
                results = run(app.url, env["KNTC_DATABASE_URL"], env, args.concurrency, args.seconds, args.cases,
                              password, app_pid=app.proc.pid if app.proc else None, db_pid=db_pid,
                              profile_dir=profile_dir,
                              query=statements_query(args.pg_root, args.pg_port,
                                                     conninfo_to_dict(env["KNTC_DATABASE_URL"])["dbname"]),
                              pipelined=args.mode == "pipeline")
            select_tps = select_only(select_only_dsn(env, args.pg_root, args.pg_port), args.concurrency, args.seconds)
            driver_ms = driver_floor(env["KNTC_DATABASE_URL"], args.mode)
    except StackError as exc:
        print(f"bench-app: {exc}", file=sys.stderr)
        return 1
    text = print_table(results, args.concurrency, args.workers)
    commit = commit_measured()
    mode = "the running app's" if args.host else args.mode
    summary = print_summary(results, select_tps, commit, mode, driver_ms)
    profile = ""
    if profile_dir is not None:
        profile = profile_app.markdown({r.endpoint: profile_app.Profiler.stacks(profiled_file(profile_dir, r.endpoint))
                                        for r in results})
        print(f"\n{profile}\n(raw stacks: {profile_dir})", flush=True)
    REPORTS.mkdir(parents=True, exist_ok=True)
    out = REPORTS / f"bench-app-{stamp}.json"
    out.write_text(json.dumps({"at": stamp, "label": args.label, "concurrency": args.concurrency,
                               "workers": args.workers, "commit": commit, "mode": mode,
                               "pgbench_select_tps": select_tps, "driver_floor_app_cpu_ms": driver_ms,
                               "results": [{**asdict(r), "ratio": r.ratio} for r in results],
                               "table": text, "summary": summary, "profile": profile}, indent=1))
    print(f"figures saved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
