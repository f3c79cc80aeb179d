"""One command for a load run: stack (local) or host (lab), test data, Locust, report.

    python -m loadtests.run                                 # local cluster + `kntc serve`, busy day
    python -m loadtests.run --host https://kntc.lab.example  # the lab (--admin-user for accounts)
    python -m loadtests.run --shape breakpoint --processes 2
    python -m loadtests.run --roster-key K --roster-credentials C --officers 10000 \
        --shape fixed --users 300 --run-time 20m --session-seconds 30   # 10,000 distinct officers
    python -m loadtests.run --national --roster-key K --roster-credentials C   # every officer at once

The accounts a local run made are kept with the database they live in (the cluster's folder and
port, the database's name), not the port the app was served on, so a second run on the same
database logs the same officers in.

Each stage is judged on its own (loadtests/verdict.py). The exit code: 0 every target stage held
(a probe past the target that broke is the breakpoint, a finding), 1 a target stage did not hold
(the last line names it and the limit), 2 the run could not start.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from loadtests import report, shapes, statements, testdata, tiers
from loadtests.stack import BIN, REPORTS, ROOT, AppServer, StackError, local_env, prepare_database

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
POOL_MARGIN = 1.05
DEFAULT_PACE = 20.0
# The stress scenario sends 8,186 req/s at pace 1; this machine's app answers a few dozen, and an
# officer's first action brings its first login (a new password, a second factor: several argon2id
# hashes, about 3 requests more): 0.0002 offers 1.6 actions a second, each officer thinking for
# about a day between two (a population that thinks, which is what the generator must hold).
NATIONAL_PACE = 0.0002


def locust_command(host: str, folder: Path, args: argparse.Namespace, data: Path) -> list[str]:
    cmd = [str(BIN / "locust"), "-f", str(LOCUSTFILE), "--headless", "--host", host, "--only-summary",
           "--csv", str(folder / "locust"), "--csv-full-history", "--html", str(folder / "report.html"),
           "--json-file", str(folder / "locust"), "--exit-code-on-error", "0", "--stop-timeout", "10",
           "--kntc-data", str(data), "--kntc-shape", args.shape, "--kntc-scenario", args.scenario,
           "--kntc-scale", str(args.scale), "--kntc-pace", str(args.pace),
           "--kntc-step-seconds", str(args.step_seconds), "--kntc-probe-steps", str(args.probe_steps),
           "--kntc-report-dir", str(folder), "--kntc-thresholds", str(args.thresholds),
           "--kntc-app-workers", str(args.app_workers), "--kntc-session-seconds", str(args.session_seconds),
           # A fixed crowd of roster officers runs until that many distinct officers came (load-roster);
           # a shape with stages runs its stages, the officers handing on to one another.
           "--kntc-stop-after-officers", str(args.officers if args.roster_key and args.shape == "fixed" else 0),
           "--kntc-connections", str(args.connections), "--kntc-spawn-rate", str(args.spawn_rate),
           "--kntc-web-share", str(args.web_share),
           "--loglevel", "INFO"]
    if args.processes:
        cmd += ["--processes", str(args.processes)]
    if args.run_time:
        cmd += ["--run-time", args.run_time]
    if args.users:
        cmd += ["-u", str(args.users), "-r", str(max(1, args.users // 10))]
    return cmd


def national_defaults(args: argparse.Namespace) -> None:
    """The whole population: every officer of the roster, one user each, thinking as in the stress
    scenario (everyone logged in), slowed by the pace to what this machine's app can answer."""
    if not args.roster_key:
        raise StackError("--national needs the imported roster: --roster-key and --roster-credentials "
                         "(make accounts-national IMPORT_INTO=local first)")
    args.shape, args.scenario, args.scale = "national", "stress", 1.0
    args.officers = 10**7  # all of them
    if args.pace == DEFAULT_PACE:
        args.pace = NATIONAL_PACE
    args.connections = args.connections or 64
    if not args.processes:
        args.processes = os.cpu_count() or 2


def generator_line(folder: Path) -> str:
    path = folder / "generator.json"
    if not path.exists():
        return "load generator: no figures (generator.json missing)"
    g = json.loads(path.read_text())
    per = f", {g['kb_per_user']:.1f} KiB per user" if g.get("kb_per_user") else ""
    return (f"load generator: {g['users']:,} users in {g['processes']} process(es): peak memory "
            f"{g['rss_mb_peak_sum'] / 1024:.2f} GiB (sum over processes{per}), CPU {g['cpu_s']:.0f} s in "
            f"{g['wall_s']:.0f} s ({g['cores_used']:.2f} cores)")


def run(args: argparse.Namespace) -> int:
    if args.national:
        national_defaults(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = args.out or REPORTS / f"{args.shape}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    # Each mode keeps its own officers (and their passwords) from run to run.
    data = folder.parent / ("testdata-roster.json" if args.roster_key else "testdata.json")

    def go(host: str, target: str, meter: tiers.Meter | None) -> int:
        if args.roster_key:
            # A class with few users goes through its officers more slowly than the others: with a
            # pool a little larger than the target, the run reaches the target without waiting for it.
            prepared = testdata.prepare_roster(host, data, args.roster_key, args.roster_credentials,
                                               math.ceil(args.officers * POOL_MARGIN), threads=args.threads,
                                               cases_per_unit=args.cases_per_unit, target=target,
                                               lazy=args.national, seed=args.sample_seed)
            if prepared["failures"]:
                raise StackError(f"{len(prepared['failures'])} officer(s) could not be set up: "
                                 f"{prepared['failures'][0]} (rerun to resume)")
            del prepared  # the national population's test data: Locust reads it from the file
        else:
            testdata.prepare(host, data, per_level=args.per_level, cases_per_unit=args.cases_per_unit,
                             demo_cases=args.demo_cases, admin_user=args.admin_user,
                             admin_password=os.environ.get("KNTC_LOAD_ADMIN_PASSWORD"),
                             admin_totp=os.environ.get("KNTC_LOAD_ADMIN_TOTP"), target=target)
        print(f"locust: shape {args.shape}, scale {args.scale}, pace {args.pace}, report in {folder}", flush=True)
        leader = lab_statements(meter) if args.host else None
        with (folder / "locust.log").open("w") as log, tiers.Sampler(meter or (lambda: {})) as sampler:
            code = subprocess.run(locust_command(host, folder, args, data), stdout=log, stderr=subprocess.STDOUT,
                                  cwd=ROOT).returncode
        if meter:
            tiers.write(folder, sampler, "the lab's control groups, per service" if args.host
                        else "the local app server's and cluster's process trees")
        if leader:
            try:
                statements.write(folder, statements.top(leader, 40), "the lab's DC leader", statements.totals(leader))
            except Exception as exc:  # the run's figures stand without this section
                print(f"statements: not read from the leader: {exc}", file=sys.stderr)
        summary = report.summarise(folder, args.app_workers, args.workers_per_node, args.db_cores)
        print((folder / "summary.md").read_text())
        print(f"report: {folder}/summary.md, report.html, throughput.png, latency.png", flush=True)
        print(generator_line(folder), flush=True)
        v = summary["verdict"]
        if not v or code not in (0, 1):
            print(f"load: Locust ended (exit code {code}) without a verdict of the stages: see {folder}/locust.log",
                  file=sys.stderr)
            return 1
        print(v["finding"], flush=True)
        print(f"load: {v['line']}", file=sys.stderr if not v["passed"] else sys.stdout)
        return int(v["exit_code"])

    if args.host:
        trust_lab_ca(args.host)
        return go(args.host.rstrip("/"), args.host.rstrip("/"), lab_meter(args))
    env = {**os.environ, **local_env(args.pg_root, args.pg_port)}
    prepare_database(env)
    os.environ.update(env)  # testdata uses the operator's commands with these DSNs
    with AppServer(env, workers=args.app_workers, log=folder / "server.log") as app:
        pid_file = args.pg_root.resolve() / "pg" / "postmaster.pid"
        db_pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        meter = tiers.local_meter(app.proc.pid if app.proc else None, db_pid) if args.tier_cpu != "none" else None
        return go(app.url, local_target(args.pg_root, args.pg_port, env["KNTC_DATABASE_URL"]), meter)


def trust_lab_ca(host: str) -> None:
    """The CA a run verifies the target's certificates with, for the test data's calls (requests) and
    Locust's (KNTC_LOAD_CA): KNTC_LOAD_CA when given; for one of the lab's hosts the lab's own CA,
    which alone signs them (a REQUESTS_CA_BUNDLE of the machine's public CAs would refuse them)."""
    ca = os.environ.get("KNTC_LOAD_CA")
    if not ca:
        from dr.errors import DrError
        from dr.lab import load_inventory

        try:
            inv = load_inventory()
        except (DrError, OSError):
            return
        if urlsplit(host).hostname not in {h.address for h in inv.hosts.values()} or not inv.ca_file.exists():
            return
        ca = str(inv.ca_file)
    os.environ["REQUESTS_CA_BUNDLE"] = os.environ["KNTC_LOAD_CA"] = ca


def lab_statements(meter: tiers.Meter | None) -> statements.Query | None:
    """The lab's DC leader, its `pg_stat_statements` reset, when the run targets the lab (the tiers are
    read there); None, with a line saying why, when it cannot be read."""
    if meter is None:
        return None
    try:
        query = statements.lab_query()
        statements.reset(query)
        return query
    except Exception as exc:  # the run goes on without this section
        print(f"statements: not read from the leader: {exc}", file=sys.stderr)
        return None


def lab_meter(args: argparse.Namespace) -> tiers.Meter | None:
    """The lab's tiers when the run targets one of the lab's hosts (or --tier-cpu lab says so)."""
    if args.tier_cpu == "none":
        return None
    try:
        return tiers.lab_meter(address=None if args.tier_cpu == "lab" else urlsplit(args.host).hostname)
    except tiers.NotTheLab as exc:
        if args.tier_cpu == "lab":
            raise StackError(str(exc)) from exc
        return None


def local_target(root: Path, port: int, dsn: str) -> str:
    """The local database as the accounts' home: the app's port changes from run to run, it does not."""
    return f"local:{root.resolve()}:{port}/{urlsplit(dsn).path.lstrip('/')}"


def share(text: str) -> float:
    """A share from 0 to 1, or argparse's one-line error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share: give a number from 0 to 1")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", help="an app already running (default: the local cluster and `kntc serve`)")
    p.add_argument("--shape", default="busy_day", choices=shapes.SHAPES)
    p.add_argument("--scenario", default="busy", choices=["typical", "busy", "stress"])
    p.add_argument("--scale", type=float, default=0.001, help="share of the national concurrent users")
    p.add_argument("--pace", type=float, default=DEFAULT_PACE, help="think times divided by this (time compression)")
    p.add_argument("--step-seconds", type=float, default=60)
    p.add_argument("--probe-steps", type=int, default=4)
    p.add_argument("--run-time", help="hard stop, e.g. 30m (shapes end by themselves)")
    p.add_argument("--users", type=int, default=0, help="users of the 'fixed' shape (with --run-time)")
    p.add_argument("--processes", type=int, default=0, help="Locust worker processes on this machine")
    p.add_argument("--app-workers", type=int, default=2, help="`kntc serve --workers` (or the host's, for the report)")
    p.add_argument("--workers-per-node", type=int, default=8)
    p.add_argument("--db-cores", type=int, default=os.cpu_count() or 2)
    p.add_argument("--pg-root", type=Path, default=ROOT / ".data" / "local")
    p.add_argument("--pg-port", type=int, default=55432)
    p.add_argument("--per-level", type=int, default=2)
    p.add_argument("--cases-per-unit", type=int, default=12)
    p.add_argument("--demo-cases", type=int, default=0)
    p.add_argument("--admin-user", default=os.environ.get("KNTC_LOAD_ADMIN_USER"))
    p.add_argument("--session-seconds", type=float, default=0,
                   help="mean session length before a user's officer hands over (0: the scenario's ÷ pace)")
    p.add_argument("--roster-key", type=Path, help="officers of an imported roster (its <roster>.key.csv) ...")
    p.add_argument("--roster-credentials", type=Path, nargs="+", help="... with the import's initial passwords")
    p.add_argument("--officers", type=int, default=10_000,
                   help="distinct roster officers to log in (5 %% more are set up); the fixed shape ends when "
                        "they have")
    p.add_argument("--threads", type=int, default=8, help="first logins at once")
    p.add_argument("--sample-seed", type=int, default=1,
                   help="which officers of the roster are simulated (the same seed, the same officers)")
    p.add_argument("--national", action="store_true",
                   help="every officer of the roster at once (shape national, stress scenario, pace "
                        f"{NATIONAL_PACE} unless given, one worker process per core)")
    p.add_argument("--connections", type=int, default=0,
                   help="connections per Locust process shared by its users (0: one pool per user)")
    p.add_argument("--spawn-rate", type=float, default=1000, help="national: users started per second")
    p.add_argument("--web-share", type=share, default=0.0,
                   help="share of officers working in the pages (work lists, case page, overview) instead of the API")
    p.add_argument("--tier-cpu", choices=["auto", "lab", "none"], default="auto",
                   help="CPU per tier during the run (tiers.json, the summary): auto reads the lab's hosts when "
                        "--host is one of them, and the local stack's processes without --host")
    p.add_argument("--thresholds", type=Path, default=Path(__file__).resolve().parent / "thresholds.toml")
    p.add_argument("--out", type=Path, help="run folder (default loadtests/reports/<shape>-<time>)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # The preparation says how far it is (thousands of first logins take minutes).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return run(args)
    except StackError as exc:
        print(f"load: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
