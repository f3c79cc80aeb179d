"""Planned site switchover DC → DR and switchback DR → DC (`kntc-dr drill site-switchover`).

The drill executes the steps of runbooks/dr-site-switchover.md as written (`kntc-dr site demote`,
`wait-caught-up`, `promote`, `point-app`, `wait-following`), with two witnesses around them:

- a writer committing one row per transaction through whichever site's HAProxy rw port accepts
  it, recording every acknowledged commit (RPO: every one must be on the final primary);
- a monitor sampling pg_is_in_recovery() on every database node of both sites (never two
  primaries at once).

Figures: RTO from the start of the demotion to the first commit acknowledged through the other
site's HAProxy, and to the other site's case service reporting a primary database.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dr.drills.monitor import PrimaryMonitor, monitor_checks
from dr.drills.steps import FAILURES, DrillFailed, StepRunner, step_env
from dr.drills.writer import Writer, prepare_table, present_seqs, rpo
from dr.lab import Inventory, Lab, load_inventory
from dr.report import Report
from dr.sites.state import rw_endpoints, stamp, wait_until

RUNBOOK = "dr-site-switchover.md"
NO_APP = "n/a: the case service did not report a primary database"


def preflight(lab: Lab, inv: Inventory, primary: str, report: Report) -> None:
    """Each site's database hosts accept replication from their own site's balancers: once the roles
    are exchanged, the other site follows this one through them."""
    missing = []
    for site in (primary, inv.other(primary)):
        for db in inv.db(site):
            conf = lab.out(db, "cat /etc/patroni/config.yml")
            missing += [f"{db.name}←{b.name}" for b in inv.balancers(site)
                        if f"replication {lab_replication_user(conf)} {b.address}/32" not in conf]
    report.check("pg_hba cho phép sao chép qua HAProxy của mỗi site / replication through each site's HAProxy",
                 not missing, "every database host accepts replication from its site's balancers" if not missing
                 else f"missing on {', '.join(missing)}: the patroni role must render `hostssl replication "
                 "replicator <balancer>/32` for the balancers of every site, not only the primary site's "
                 "(roles/patroni/templates/config.yml.j2)")
    if missing:
        raise DrillFailed("pg_hba: " + ", ".join(missing))


def lab_replication_user(conf: str) -> str:
    import yaml

    try:
        return yaml.safe_load(conf)["postgresql"]["authentication"]["replication"]["username"]
    except (KeyError, TypeError, yaml.YAMLError):
        return "replicator"


def move(runner: StepRunner, writer: Writer, src: str, dst: str) -> dict[str, Any]:
    """§1–§5 (or §6) of the runbook: `dst` becomes the primary site, `src` follows it."""
    t0, _ = runner.run(RUNBOOK, f"demote-{src}")
    runner.run(RUNBOOK, f"caught-up-{dst}")
    runner.run(RUNBOOK, f"promote-{dst}")
    # the case service is the last hop of the RTO; if it does not come up, the sites are still
    # moved (and moved back): the report fails on this step, the drill does not stop half-way
    _, t_app = runner.run(RUNBOOK, f"apps-to-{dst}", fatal=False)
    runner.run(RUNBOOK, f"{src}-follows-{dst}")
    first = writer.acks_since(t0, dst)
    if not first:
        raise DrillFailed(f"không commit nào qua {dst} / no commit acknowledged through {dst}")
    last_src = max((a.at for a in writer.acks if a.site == src and a.at < first[0].at), default=t0)
    return {"t0": t0, "t_writes": first[0].at, "rto_write_seconds": round(first[0].at - t0, 2),
            "write_outage_seconds": round(first[0].at - last_src, 2),
            "rto_app_seconds": round(t_app - t0, 2) if not math.isnan(t_app) else NO_APP}


def run_site_switchover(inventory: Path | None = None, report_dir: Path = Path(".data/dr-reports"),
                        stay_s: float = 5.0, log: Callable[[str], None] = print) -> tuple[Report, Path, Path]:
    inv = load_inventory(inventory)
    lab = Lab(inv)
    primary = inv.primary_site
    other = inv.other(primary)
    report = Report("drill-site-switchover", f"Diễn tập chuyển site có kế hoạch {primary} → {other} → {primary} / "
                    f"planned site switchover {primary} → {other} and back", "-")
    run_id = f"switchover-{stamp()}"
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    runner = StepRunner(step_env(inv), report, log)
    mon = PrimaryMonitor(inv)
    writer: Writer | None = None
    try:
        log("[1/5] kiểm tra trước / preflight")
        preflight(lab, inv, primary, report)
        runner.run(RUNBOOK, "status-before")
        prepare_table(rw_endpoints(inv, primary)[0])
        log("[2/5] giám sát + bộ ghi / monitor and writer")
        mon.start()
        mon.wait_sampling()
        writer = Writer(run_id, rw_endpoints(inv, primary) + rw_endpoints(inv, other),
                          report_dir / f"{run_id}-acks.tsv")
        writer.start()
        wait_until(lambda: len(writer.acks) > 0, 30, "bộ ghi được xác nhận / the writer gets acknowledgements")
        time.sleep(stay_s)  # a workload duration, not a wait for a condition
        log(f"[3/5] chuyển {primary} → {other} / switchover")
        there = move(runner, writer, primary, other)
        time.sleep(stay_s)  # the other site serves writes for a while
        log(f"[4/5] chuyển về {other} → {primary} / switchback")
        back = move(runner, writer, other, primary)
        runner.run(RUNBOOK, "status-after")
        wait_until(lambda: writer.acks_since(time.time() - 1, primary), 30,
                     f"bộ ghi ghi qua {primary} / the writer commits through {primary}")
        writer.stop()
        log("[5/5] kiểm tra / checks")
        acks = list(writer.acks)
        present = present_seqs(rw_endpoints(inv, primary)[0], run_id)
        lost, span, seqs = rpo(acks, present)
        report.check("không mất commit đã xác nhận / no acknowledged commit lost", lost == 0 and bool(acks),
                     f"{len(acks) - lost} of {len(acks)} acknowledged commits present on {primary} after the "
                     "switchback" + (f"; lost {seqs[:10]}" if lost else ""))
        served = [a for a in acks if there["t_writes"] <= a.at < back["t0"] and a.site == other]
        report.check(f"{other} phục vụ ghi / {other} served writes", bool(served),
                     f"{len(served)} commits acknowledged through {other}'s HAProxy while it was primary")
        gaps = [b.at - a.at for a, b in itertools.pairwise(acks)]
        report.figures.update({
            "switchover_rto_write_seconds": there["rto_write_seconds"],
            "switchover_rto_app_seconds": there["rto_app_seconds"],
            "switchover_write_outage_seconds": there["write_outage_seconds"],
            "switchback_write_outage_seconds": back["write_outage_seconds"],
            "switchback_rto_write_seconds": back["rto_write_seconds"],
            "switchback_rto_app_seconds": back["rto_app_seconds"],
            "rpo_lost_commits": lost, "rpo_seconds": round(span, 3),
            "writer_commits": len(acks), "writer_errors": writer.errors,
            "longest_write_gap_seconds": round(max(gaps, default=0.0), 2),
            "step_seconds": runner.timings,
        })
    except FAILURES as exc:
        report.check("diễn tập hoàn tất / drill completed", False, str(exc))
    finally:
        if writer is not None and writer.is_alive():
            writer.stop()
        mon.stop()
        lab.close()
    if mon.sample_count():
        monitor_checks(report, mon)
    return (report, *report.write(report_dir, f"drill-site-switchover-{stamp()}"))
