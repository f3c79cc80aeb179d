"""Login benchmark: what a login costs at the chosen argon2id cost, against the library's default cost.

It makes accounts on the local cluster, half hashed at the chosen cost (core_app.security.OFFICER_HASHER)
and half at argon2-cffi's default (the cost before this choice), starts `kntc serve`, and logs in
`--concurrency` clients at once, each login a different account (an officer logs in once, then
works), each client from an address of its own (X-Real-IP, which the app believes from loopback
as it does from the site's nginx). It prints logins/s, p50/p95/p99 and the app's CPU per login for
each cost, and the peak resident memory of the app's processes. It asserts nothing.

    python -m loadtests.bench_login                   # 2 workers, 8 clients, 400 logins per cost
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg
import requests
from argon2 import PasswordHasher

from core_app.security import OFFICER_HASHER
from loadtests.stack import REPORTS, ROOT, AppServer, StackError, local_env, prepare_database

PASSWORD = "ngựa vằn đạp xe qua cầu 1954"  # noqa: S105 - the bench accounts' own, on a local cluster
UNIT = "X00008"


@dataclass
class Figures:
    cost: str
    logins: int
    errors: int
    per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    app_cpu_ms_per_login: float


def make_accounts(admin_dsn: str, prefix: str, n: int, hasher: PasswordHasher) -> list[str]:
    # One hash serves every account of a cost: verifying costs the same whichever account it is.
    pw_hash = hasher.hash(PASSWORD)
    names = [f"{prefix}.{i:05d}" for i in range(n)]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM kntc.account WHERE username LIKE %s AND NOT EXISTS "
                     "(SELECT 1 FROM kntc.case_file c WHERE c.created_by = kntc.account.id)", (prefix + ".%",))
        conn.execute(
            "INSERT INTO kntc.account (username, full_name, unit_id, roles, clearance, password_hash) "
            "SELECT n, 'Cán bộ đo đăng nhập', u.id, '{reception}', 0, %s FROM unnest(%s::text[]) n, kntc.unit u "
            "WHERE u.code = %s ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
            (pw_hash, names, UNIT))
    return names


def app_cpu_seconds(pid: int) -> float:
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def app_rss_mib(pid: int) -> float:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def run_logins(url: str, names: list[str], concurrency: int) -> tuple[list[float], int, float]:
    queue = list(names)
    lock = threading.Lock()
    times: list[float] = []
    errors = 0

    def client(k: int) -> None:
        nonlocal errors
        s = requests.Session()
        s.headers["X-Real-IP"] = f"10.77.{k // 250}.{k % 250 + 1}"
        while True:
            with lock:
                if not queue:
                    return
                name = queue.pop()
            t0 = time.perf_counter()
            r = s.post(url + "/api/auth/login", json={"username": name, "password": PASSWORD}, timeout=60)
            dt = (time.perf_counter() - t0) * 1000
            with lock:
                if r.status_code == 200:
                    times.append(dt)
                else:
                    errors += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(times), errors, time.perf_counter() - t0


def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pg-root", type=Path, default=ROOT / ".data" / "local")
    p.add_argument("--pg-port", type=int, default=55432)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--logins", type=int, default=400, help="logins per cost (each a different account)")
    args = p.parse_args(argv)
    tag = secrets.token_hex(2)
    try:
        env = {**os.environ, **local_env(args.pg_root, args.pg_port)}
        prepare_database(env)
        costs = {"chosen (m=19MiB,t=2,p=1)": OFFICER_HASHER, "library default (m=64MiB,t=3,p=4)": PasswordHasher()}
        accounts = {label: make_accounts(env["KNTC_ADMIN_DATABASE_URL"], f"bl{tag}{i}", args.logins, h)
                    for i, (label, h) in enumerate(costs.items())}
        figures: list[Figures] = []
        rss = 0.0
        with AppServer(env, workers=args.workers, log=REPORTS / "bench-login-server.log") as app:
            assert app.proc is not None
            for label, names in accounts.items():
                cpu0 = app_cpu_seconds(app.proc.pid)
                times, errors, wall = run_logins(app.url, names, args.concurrency)
                cpu = app_cpu_seconds(app.proc.pid) - cpu0
                rss = max(rss, app_rss_mib(app.proc.pid))
                figures.append(Figures(label, len(times), errors, len(times) / wall, pct(times, .5), pct(times, .95),
                                       pct(times, .99), cpu * 1000 / max(1, len(times))))
    except StackError as exc:
        print(f"bench-login: {exc}", file=sys.stderr)
        return 1
    print(f"logins: {args.concurrency} clients, {args.workers} app workers, each login a different account")
    print(f"{'argon2id cost':38} {'logins':>6} {'err':>4} {'per s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'app CPU ms/login':>17}")
    for f in figures:
        print(f"{f.cost:38} {f.logins:6d} {f.errors:4d} {f.per_s:7.1f} {f.p50_ms:8.1f} {f.p95_ms:8.1f} "
              f"{f.p99_ms:8.1f} {f.app_cpu_ms_per_login:17.1f}")
    print(f"app processes' peak resident memory: {rss:.0f} MiB")
    if len(figures) == 2 and figures[0].app_cpu_ms_per_login:
        ratio = figures[1].app_cpu_ms_per_login / figures[0].app_cpu_ms_per_login
        print(f"CPU per login, default ÷ chosen: {ratio:.2f}")
    REPORTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = REPORTS / f"bench-login-{stamp}.json"
    out.write_text(json.dumps({"at": stamp, "workers": args.workers, "concurrency": args.concurrency,
                               "rss_mib": rss, "results": [asdict(f) for f in figures]}, indent=1))
    print(f"figures saved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
