"""Unplanned loss of the DC (`kntc-dr drill site-failover`).

The drill executes runbooks/dr-site-failover.md as written — cut (lab only), confirm the loss,
fence the DC, promote the DR, point the DR's case service at its rw port, the DR's own stanza,
heal, prove that the fenced DC refuses writes, rejoin the DC as the standby site — then the
switchback of runbooks/dr-site-switchover.md §6, so that the lab ends as it started.

Around the steps: a writer committing through the DC's HAProxy until the cut (its clients lose
the DC with it), then through the DR's; a monitor of pg_is_in_recovery() on every database node.
Figures: RTO from the cut to the first commit acknowledged through the DR's HAProxy and to the
DR's case service reporting a primary; RPO as the commits the DC acknowledged that the promoted
DR does not have (cross-site replication is asynchronous), counted and in seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from dr.drills.monitor import PrimaryMonitor, monitor_checks
from dr.drills.site_switchover import NO_APP, move, preflight
from dr.drills.site_switchover import RUNBOOK as SWITCHOVER
from dr.drills.steps import FAILURES, DrillFailed, StepRunner, heal_lab, step_env
from dr.drills.writer import Writer, prepare_table, present_seqs, rpo
from dr.lab import Lab, load_inventory
from dr.report import Report
from dr.sites.state import leader, rw_endpoints, stamp, wait_until

RUNBOOK = "dr-site-failover.md"


def backup_policy_deployed(lab: Lab, host: str) -> bool:
    # Each repository is its own conf.d file (the archive guard sets one aside by moving it).
    return lab.run(host, "grep -qs '^repo2-host=' /etc/pgbackrest.conf /etc/pgbackrest/conf.d/*.conf",
                   check=False)[0] == 0


def run_site_failover(inventory: Path | None = None, report_dir: Path = Path(".data/dr-reports"),
                      warmup_s: float = 5.0, log: Callable[[str], None] = print) -> tuple[Report, Path, Path]:
    inv = load_inventory(inventory)
    lab = Lab(inv)
    lost_site = inv.primary_site
    survivor = inv.other(lost_site)
    if (lost_site, survivor) != ("dc", "dr"):
        raise DrillFailed("diễn tập giả định DC là primary / the drill expects the DC to be the primary site")
    report = Report("drill-site-failover", "Diễn tập mất site DC, chuyển sang DR / unplanned loss of the DC, "
                    "failover to the DR", "-")
    run_id = f"failover-{stamp()}"
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    runner = StepRunner(step_env(inv), report, log)
    mon = PrimaryMonitor(inv)
    writer: Writer | None = None
    cut = False
    try:
        log("[1/8] kiểm tra trước / preflight")
        preflight(lab, inv, lost_site, report)
        runner.run(RUNBOOK, "status-before")
        prepare_table(rw_endpoints(inv, lost_site)[0])
        mon.start()
        mon.wait_sampling()
        writer = Writer(run_id, rw_endpoints(inv, lost_site), report_dir / f"{run_id}-acks.tsv")
        writer.start()
        wait_until(lambda: len(writer.acks) > 0, 30, "bộ ghi được xác nhận / the writer gets acknowledgements")
        time.sleep(warmup_s)  # a workload duration, not a wait for a condition
        log("[2/8] mất DC / the DC is lost")
        writer.set_endpoints([])  # the clients lose the DC with it
        t_cut, _ = runner.run(RUNBOOK, "cut")
        cut = True
        runner.run(RUNBOOK, "dr-lost")
        log("[3/8] rào DC, nâng cấp DR / fence the DC, promote the DR")
        t_fence, _ = runner.run(RUNBOOK, "fence-dc")
        writer.set_endpoints(rw_endpoints(inv, survivor))
        runner.run(RUNBOOK, "promote-dr")
        _, t_app = runner.run(RUNBOOK, "apps-to-dr", fatal=False)
        wait_until(lambda: writer.acks_since(t_cut, survivor), 30,
                     "bộ ghi ghi qua DR / the writer commits through the DR")
        first = writer.acks_since(t_cut, survivor)
        t_writes = first[0].at
        log("[4/8] RPO")
        acks_dc = [a for a in writer.acks if a.site == lost_site]
        present = present_seqs(rw_endpoints(inv, survivor)[0], run_id)
        lost, span, seqs = rpo(acks_dc, present)
        report.check("RPO đo được / RPO measured (cross-site replication is asynchronous)", bool(acks_dc),
                     f"{lost} of {len(acks_dc)} commits acknowledged by the DC are missing on the DR, spanning "
                     f"{span:.3f} s" + (f" (seq {seqs[0]}…{seqs[-1]})" if lost else ""))
        log("[5/8] mạng trở lại, DC vẫn bị rào / link back, the DC stays fenced")
        runner.run(RUNBOOK, "heal")
        cut = False
        runner.run(RUNBOOK, "fenced-refuses-writes")
        log("[6/8] stanza của DR / the DR's own stanza")
        survivor_leader = leader(lab, survivor)["Member"]
        if backup_policy_deployed(lab, survivor_leader):
            runner.run(RUNBOOK, "stanza-dr")
            report.figures["stanza_dr"] = "kntc-dr created in both repositories, full backup taken in repo2"
        else:
            report.figures["stanza_dr"] = "not run: the backup policy (backup.yml) is not deployed on the DR"
        log("[7/8] DC nhập lại / the DC rejoins as the standby site")
        t_rejoin, _ = runner.run(RUNBOOK, "rejoin-dc", timeout=1200)
        _, t_following = runner.run(RUNBOOK, "dc-follows-dr")
        log("[8/8] chuyển về DC / switchback")
        writer.set_endpoints(rw_endpoints(inv, survivor) + rw_endpoints(inv, lost_site))
        back = move(runner, writer, survivor, lost_site)
        runner.run(RUNBOOK, "status-after")
        wait_until(lambda: writer.acks_since(time.time() - 1, lost_site), 30,
                     "bộ ghi ghi qua DC / the writer commits through the DC")
        writer.stop()
        present = present_seqs(rw_endpoints(inv, lost_site)[0], run_id)
        after = [a for a in writer.acks if a.at >= t_writes]
        lost_after, _, lost_after_seqs = rpo(after, present)
        report.check("không mất commit từ khi DR nhận ghi / no commit lost since the DR took writes",
                     lost_after == 0 and bool(after),
                     f"{len(after) - lost_after} of {len(after)} commits acknowledged since the promotion are "
                     "present after the switchback" + (f"; lost {lost_after_seqs[:10]}" if lost_after else ""))
        report.figures.update({
            "site_failover_rto_write_seconds": round(t_writes - t_cut, 2),
            "site_failover_rto_app_seconds": round(t_app - t_cut, 2) if not math.isnan(t_app) else NO_APP,
            "fence_to_write_seconds": round(t_writes - t_fence, 2),
            # when the DC was lost and when the decision to fence was taken (epoch): for a load
            # running beside the drill to say what its officers saw from then
            "cut_at": round(t_cut, 3), "fence_at": round(t_fence, 3),
            "site_failover_rpo_lost_commits": lost, "site_failover_rpo_seconds": round(span, 3),
            "commits_acknowledged_by_dc": len(acks_dc),
            "rejoin_seconds": round(t_following - t_rejoin, 1),
            "switchback_rto_write_seconds": back["rto_write_seconds"],
            "switchback_rto_app_seconds": back["rto_app_seconds"],
            "writer_commits": len(writer.acks), "writer_errors": writer.errors,
            "step_seconds": runner.timings,
        })
    except FAILURES as exc:
        report.check("diễn tập hoàn tất / drill completed", False,
                     f"{exc} — finish by hand from the failed step of runbooks/{RUNBOOK} "
                     f"(then runbooks/{SWITCHOVER} §6)")
    finally:
        if cut:
            heal_lab()
        if writer is not None and writer.is_alive():
            writer.stop()
        mon.stop()
        lab.close()
    if mon.sample_count():
        monitor_checks(report, mon)
    return (report, *report.write(report_dir, f"drill-site-failover-{stamp()}"))
