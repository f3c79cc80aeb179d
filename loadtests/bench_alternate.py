"""Two apps, or two modes of one app, measured alternately on one bench cluster: CPU per read.

One run of `make bench-app` per version is inside this machine's noise, and the bench's own intakes
grow the data between runs. This serves the reads only (`/livez`, the case file, the inbox, search),
so the data stays the same, and alternates the two sides round after round; it prints each round's
figures side by side (req/s, the app's and PostgreSQL's CPU per request). It is a benchmark: it
prints figures and asserts nothing about them.

    python -m loadtests.bench_alternate --other-app <export of another commit>   # this tree against it
    python -m loadtests.bench_alternate --modes            # pipeline mode against the pooler's mode
    python -m loadtests.bench_alternate --other-env GRANIAN_TASK_IMPL=rust   # a server setting, on and off

`--modes` runs this tree straight to PostgreSQL both times, in its own mode and in the mode of the
app hosts behind PgBouncer (`KNTC_DATABASE_POOLER=pgbouncer`: one statement per round trip, nothing
prepared). That mode expects the server connections to carry the waits PgBouncer's `connect_query`
sets, so the bench cluster's application and login roles are given them (`ALTER ROLE ... SET`).
`--other-env` runs this tree in the pooler's mode both times, once with the given variables (granian
reads its settings from `GRANIAN_*`, the app from `KNTC_*`) and once without.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from loadtests import bench_app
from loadtests.stack import REPORTS, ROOT, AppServer, StackError, local_env, prepare_database
from loadtests.tiers import tree_cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    side = p.add_mutually_exclusive_group(required=True)
    side.add_argument("--other-app", type=Path, help="another source tree (e.g. `git archive` of a commit)")
    side.add_argument("--modes", action="store_true", help="this tree in pipeline mode and in the pooler's mode")
    side.add_argument("--other-env", nargs="+", metavar="NAME=VALUE",
                      help="this tree in the pooler's mode with these variables, against it without them")
    p.add_argument("--pg-root", type=Path, default=ROOT / ".data" / "bench-alternate")
    p.add_argument("--pg-port", type=int, default=55526)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=6)
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args(argv)
    if args.other_app and not (args.other_app / "core_app").is_dir():
        p.error(f"--other-app {args.other_app}: no core_app folder there")
    if args.rounds < 1:
        p.error("--rounds: at least 1")
    if args.other_env and not all(re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", v) for v in args.other_env):
        p.error("--other-env: each is NAME=VALUE, e.g. GRANIAN_TASK_IMPL=rust")
    pooler = bench_app.MODES["pooler"]
    if args.modes:
        sides = {"this tree": bench_app.MODES["pipeline"], "pooler's mode": pooler}
    elif args.other_env:
        sides = {"this tree": dict(pooler), "with the env": {**pooler, **dict(v.split("=", 1) for v in args.other_env)}}
    else:
        sides = {"this tree": {}, "other app": {"PYTHONPATH": str(args.other_app.resolve())}}
    try:
        env = {**os.environ, **local_env(args.pg_root, args.pg_port)}
        prepare_database(env)
        if args.modes or args.other_env:
            bench_app.pooler_waits(args.pg_root, args.pg_port)
        db_pid = int((args.pg_root.resolve() / "pg" / "postmaster.pid").read_text().split()[0])
        figures: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        for rnd in range(args.rounds):
            for label, extra in sides.items():
                with AppServer(env, workers=2, log=REPORTS / "bench-alternate-server.log",
                               extra_env=extra) as app:
                    data = bench_app.prepare(app.url, env, 20, os.environ.get("KNTC_LOAD_PASSWORD",
                                                                              "Bench-password-2026"))
                    tokens = bench_app.sessions(app.url, data["handling"], data["who"]["handling"], args.concurrency)
                    reads = {"/livez": lambda i: "/livez",
                             "case file": bench_app.case_path(data["prefix"], data["lo"], data["hi"]),
                             "inbox": lambda i: bench_app.INBOX_PATH,
                             "search": lambda i: bench_app.SEARCH_PATH}
                    for name, path in reads.items():
                        rps, lat, _, (app_cpu, db_cpu) = bench_app.http_bench(
                            app.url, tokens, "GET", path, None, args.concurrency, args.seconds,
                            meters=(lambda: tree_cpu(app.proc.pid if app.proc else None), lambda: tree_cpu(db_pid)))
                        n = max(len(lat), 1)
                        figures.setdefault((name, label), []).append((rps, 1000 * app_cpu / n, 1000 * db_cpu / n))
                        print(f"round {rnd + 1} {label:14} {name:10} {rps:8.1f} req/s  app {1000 * app_cpu / n:.2f} ms"
                              f"  DB {1000 * db_cpu / n:.2f} ms", flush=True)
    except (StackError, subprocess.CalledProcessError) as exc:
        print(f"bench-alternate: {exc}", file=sys.stderr)
        return 1
    print(f"{'read':10} {'side':14} {'req/s, each round':>24} {'app CPU ms':>18} {'DB CPU ms':>18}")
    for (name, label), rows in figures.items():
        print(f"{name:10} {label:14} {' '.join(f'{r[0]:.0f}' for r in rows):>24} "
              f"{' '.join(f'{r[1]:.2f}' for r in rows):>18} {' '.join(f'{r[2]:.2f}' for r in rows):>18}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
