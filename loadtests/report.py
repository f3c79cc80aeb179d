"""The capacity report of a load run: what was held, per worker and per node, and what the nation needs.

Reads a run folder (Locust's CSV/HTML/JSON, the shape's stages.json with each stage's verdict, and
the newest bench-app figures if any) and writes summary.md, summary.json, throughput.png and
latency.png beside them. Exits as the run did: 0 every target stage held, 1 one did not.

    python -m loadtests.report loadtests/reports/<run> --app-workers 2
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from loadtests import capacity, statements, tiers
from loadtests.stack import REPORTS


def read_history(folder: Path) -> list[dict[str, float]]:
    path = folder / "locust_stats_history.csv"
    if not path.exists():
        return []
    rows = []
    with path.open() as f:
        for r in csv.DictReader(f):
            if r.get("Name") != "Aggregated":
                continue

            def num(k: str, r: dict[str, str] = r) -> float:
                v = r.get(k, "")
                return float(v) if v not in ("", "N/A") else float("nan")
            rows.append({"t": num("Timestamp"), "users": num("User Count"), "rps": num("Requests/s"),
                         "fps": num("Failures/s"), "p50": num("50%"), "p95": num("95%"), "p99": num("99%")})
    t0 = rows[0]["t"] if rows else 0
    for r in rows:
        r["t"] -= t0
    return rows


def read_endpoints(folder: Path) -> list[dict[str, Any]]:
    path = folder / "locust_stats.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return [{"name": f"{r['Type']} {r['Name']}".strip(), "requests": int(r["Request Count"]),
                 "failures": int(r["Failure Count"]), "rps": float(r["Requests/s"]), "p50": r["50%"],
                 "p95": r["95%"], "p99": r["99%"]} for r in csv.DictReader(f)]


def charts(folder: Path, hist: list[dict[str, float]], stages: list[dict[str, Any]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not hist:
        return []
    t = [r["t"] for r in hist]
    out = []
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(t, [r["rps"] for r in hist], label="requests/s", color="tab:blue")
    ax.plot(t, [r["fps"] for r in hist], label="failures/s", color="tab:red")
    ax.set_xlabel("giây / seconds")
    ax.set_ylabel("req/s")
    ax2 = ax.twinx()
    ax2.plot(t, [r["users"] for r in hist], label="users", color="tab:gray", linestyle="--")
    ax2.set_ylabel("người dùng / users")
    ax.set_title("Thông lượng / Throughput")
    fig.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(folder / "throughput.png", dpi=110)
    plt.close(fig)
    out.append("throughput.png")
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for k, c in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red")):
        ax.plot(t, [r[k] for r in hist], label=k, color=c)
    ax.axhline(300, color="black", linestyle=":", label="300 ms")
    ax.set_xlabel("giây / seconds")
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.set_title("Độ trễ (cửa sổ 10 s) / Latency (10 s window)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(folder / "latency.png", dpi=110)
    plt.close(fig)
    out.append("latency.png")
    return out


def latest_bench() -> dict[str, Any] | None:
    files = sorted(REPORTS.glob("bench-app-*.json"))
    return json.loads(files[-1].read_text()) if files else None


def summarise(folder: Path, app_workers: int, workers_per_node: int, db_cores: int) -> dict[str, Any]:
    stages_doc = json.loads((folder / "stages.json").read_text()) if (folder / "stages.json").exists() else {}
    verdict = stages_doc.get("verdict", {})
    officers = json.loads((folder / "officers.json").read_text()) if (folder / "officers.json").exists() else {}
    generator = json.loads((folder / "generator.json").read_text()) if (folder / "generator.json").exists() else {}
    tier_cpu = json.loads((folder / "tiers.json").read_text()) if (folder / "tiers.json").exists() else {}
    stmts = json.loads((folder / "statements.json").read_text()) if (folder / "statements.json").exists() else {}
    hist = read_history(folder)
    pngs = charts(folder, hist, stages_doc.get("stages", []))
    best = verdict.get("last_good")
    per_worker = best["rps"] / app_workers if best else None
    bench = latest_bench()
    db_per_core = cpu_per_worker = None
    if bench:
        reads = [r for r in bench["results"] if not r["endpoint"].startswith("record")]
        db_ms = [r["db_cpu_ms_http"] for r in reads if r.get("db_cpu_ms_http")]
        app_ms = [r["app_cpu_ms"] for r in reads if r.get("app_cpu_ms")]
        if db_ms:
            # CPU time per request does not depend on the neighbours, req/s on a shared host does.
            db_per_core = 1000 / (sum(db_ms) / len(db_ms))
        elif any(r["db_tps"] for r in reads):
            db_per_core = min(r["db_tps"] for r in reads if r["db_tps"]) / db_cores
        if app_ms:
            cpu_per_worker = 1000 / (sum(app_ms) / len(app_ms))
    model = capacity.Model().run()
    # Two bases: what this run held (honest but depressed on a shared rig) and what one core does
    # by CPU time per request (the ceiling on a dedicated node). On dedicated hardware they meet.
    national: dict[str, Any] = {}
    national_cpu: dict[str, Any] = {}
    basis = ("measured in this run (the fastest stage that held)" if per_worker else
             "CPU time per request from bench-app (no stage held in this run)" if cpu_per_worker else None)
    for out, rate in ((national, per_worker or cpu_per_worker), (national_cpu, cpu_per_worker)):
        if rate:
            sizing = capacity.Sizing(rate, workers_per_node, db_tps_per_core=db_per_core or 0.0)
            for name, sc in model["scenarios"].items():
                out[name] = sizing.plan(sc["total_rps"], sc["logins_per_s"])
    summary = {
        "folder": str(folder), "app_workers": app_workers, "stages": stages_doc.get("stages", []),
        "last_good": best, "saturated": verdict.get("saturated"), "verdict": verdict,
        "capacity_rps_per_worker": per_worker,
        "capacity_rps_per_node": per_worker * workers_per_node if per_worker else None,
        "workers_per_node": workers_per_node, "db_tps_per_core": db_per_core,
        "cpu_bound_rps_per_worker": cpu_per_worker, "sizing_basis": basis,
        "endpoints": read_endpoints(folder), "national": national, "national_cpu_bound": national_cpu,
        "charts": pngs, "officers": officers, "generator": generator, "tiers": tier_cpu,
        "statements": stmts,
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    (folder / "summary.md").write_text(markdown(summary, model))
    return summary


def stage_verdict(r: dict[str, Any]) -> str:
    if r["held"]:
        return "held"
    return {"target": "**NOT HELD: fails the run**", "probe": "broke (finding)"}.get(r["kind"], "not held (warm-up)")


def markdown(s: dict[str, Any], model: dict[str, Any]) -> str:
    L = [f"# Báo cáo kiểm thử tải / Load test report — {Path(s['folder']).name}", ""]
    v = s["verdict"]
    if v:
        L.append("## Kết luận / Verdict: " + ("ĐẠT / PASSED" if v["passed"] else "KHÔNG ĐẠT / FAILED"))
        L.append(f"- {v['line']}")
        L.append(f"- {v['finding']}")
        L.append("")
    L.append("## Các mức tải / Stages")
    L.append("Each stage measured once it settled and judged on its own against the run's thresholds "
             "(--kntc-thresholds, loadtests/thresholds.toml by default): a target stage that does not hold fails "
             "the run; a probe that does not hold is the breakpoint; a warm-up decides nothing.")
    L.append("")
    L.append("| stage | kind | users | target req/s | req/s | p50 ms | p95 ms | p99 ms | errors | verdict |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in s["stages"]:
        L.append(f"| {r['label']} | {r['kind']} | {r['users']} | {r['target_rps']} | {r['rps']} | {r['p50_ms']:.0f} | "
                 f"{r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {r['error_ratio']:.2%} | {stage_verdict(r)} |")
    L.append("")
    crossed = [r for r in s["stages"] if r["crossed"]]
    if crossed:
        L.append("Limits crossed, per stage:")
        for r in crossed:
            L.append(f"- {r['label']} ({r['kind']}): {'; '.join(r['crossed'])}")
        L.append("")
    if s.get("officers"):
        o = s["officers"]
        L.append(f"Officers: **{o['distinct_officers_logged_in']:,} distinct officers logged in** ({o['logins']:,} "
                 f"logins; {o['officers_in_pool']:,} in the test data; users that shared an officer: "
                 f"{o['users_sharing_an_officer']:,}; officers whose test data the app refused, left out and not "
                 f"counted as errors: {o.get('officers_refused_test_data', 0):,}).")
        L.append("")
    if s.get("generator"):
        g = s["generator"]
        per = f", {g['kb_per_user']:.1f} KiB per user" if g.get("kb_per_user") else ""
        L.append(f"Load generator (Locust itself, on the machine it ran on): {g['users']:,} users at most in "
                 f"{g['processes']} process(es); peak memory {g['rss_mb_peak_sum']:,.0f} MiB (sum of each process's "
                 f"peak{per}); CPU {g['cpu_s']:,.0f} s in {g['wall_s']:,.0f} s ({g['cores_used']:.2f} cores).")
        L.append("")
    if s.get("tiers"):
        L += tiers.markdown(s["tiers"])
    if s.get("statements"):
        every = next((e["requests"] for e in s["endpoints"] if e["name"].endswith("Aggregated")), None)
        L += statements.markdown(s["statements"], every)
    L.append("## Năng lực đo được / Measured capacity")
    if s["last_good"]:
        qual = "" if s["saturated"] else "at least (the limit was never crossed: the rig ran out first) "
        best = s["last_good"]
        L.append(f"- fastest stage held within the thresholds: '{best['label']}', "
                 f"{best['users']} users, **{best['rps']} req/s** on {s['app_workers']} app workers")
        L.append(f"- per app worker: {qual}**{s['capacity_rps_per_worker']:.0f} req/s**")
        L.append(f"- per app node ({s['workers_per_node']} workers, one per core; extrapolated, verify on a real "
                 f"node): **{s['capacity_rps_per_node']:.0f} req/s**")
    else:
        L.append("- no stage was held within the limits: see the stages above")
    if s.get("cpu_bound_rps_per_worker"):
        L.append(f"- cross-check from the newest `make bench-app` (CPU time per request, not disturbed by the "
                 f"neighbours): one worker on a core of its own would serve up to "
                 f"{s['cpu_bound_rps_per_worker']:.0f} req/s of the read mix")
    if s["db_tps_per_core"]:
        L.append(f"- database (from the newest `make bench-app`): {s['db_tps_per_core']:.0f} read "
                 "requests/s per core")
    L.append("")
    if s["national"]:
        L.append("## Quy mô quốc gia / National sizing (capacity model × measured capacity)")
        L.append(f"Per-worker capacity: {s['sizing_basis']}; in brackets, from CPU time per request "
                 "(a dedicated core per worker).")
        L.append("")
        L.append("| scenario | req/s | app workers | app nodes per site (N+1) | DB cores | pool connections |")
        L.append("|---|---:|---:|---:|---:|---:|")
        cpu = s.get("national_cpu_bound") or {}
        for name, p in s["national"].items():
            c = cpu.get(name)
            workers = f"{p['app_workers']} [{c['app_workers']}]" if c else str(p["app_workers"])
            nodes = f"{p['app_nodes']} [{c['app_nodes']}]" if c else str(p["app_nodes"])
            pool = f"{p['db_connections_from_pools']}{' (PgBouncer)' if p['pgbouncer_needed'] else ''}"
            L.append(f"| {name} | {p['demand_rps']:,.0f} | {workers} | {nodes} | {p.get('db_cores', '-')} | {pool} |")
        L.append("")
    L.append("## Endpoints (the whole run, probes included: for reading, not judged)")
    L.append("| request | count | failures | req/s | p50 | p95 | p99 |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for e in s["endpoints"]:
        L.append(f"| {e['name']} | {e['requests']} | {e['failures']} | {e['rps']:.1f} | {e['p50']} | {e['p95']} | "
                 f"{e['p99']} |")
    L += ["", "Charts: " + ", ".join(s["charts"]), "",
          "Model: `python -m loadtests.capacity` (assumptions printed there and in loadtests/CAPACITY.md).",
          f"Accounts modelled: {model['total_accounts']:,}."]
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--app-workers", type=int, default=2, help="app worker processes behind the host tested")
    p.add_argument("--workers-per-node", type=int, default=8)
    p.add_argument("--db-cores", type=int, default=2, help="cores of the database host of the newest bench-app")
    args = p.parse_args(argv)
    if not args.folder.is_dir():
        print(f"report: {args.folder} is not a folder", file=sys.stderr)
        return 1
    s = summarise(args.folder, args.app_workers, args.workers_per_node, args.db_cores)
    print((args.folder / "summary.md").read_text())
    v = s["verdict"]
    if not v:
        print(f"report: {args.folder}/stages.json has no verdict (the run ended before its shape did)", file=sys.stderr)
        return 1
    print(f"load: {v['line']}", file=sys.stderr if not v["passed"] else sys.stdout)
    return v["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
