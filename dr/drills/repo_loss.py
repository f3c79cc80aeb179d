"""Loss of a backup repository (`kntc-dr drill repo-loss`).

The drill executes runbooks/dr-repo-loss.md as written: both repositories hold backups, a fresh
incremental backup into repo2, a named restore point archived into both, repo1 lost (its TLS
server stopped and its directory moved away — kept, so that the drill can put it back), repo1
unreadable, a copy restored from repo2 alone on a DC replica to the restore point and promoted,
checked, removed, and repo1 back with `kntc-dr check` passing. Every step is a `kntc-dr` command on
the host where it belongs.

Around the steps: a writer commits through the DC's HAProxy while the restore point is taken;
every commit acknowledged before the restore point must be in the copy.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from dr.drills.steps import FAILURES, DrillFailed, StepRunner, step_env
from dr.drills.writer import DRILL_SCHEMA, Writer, prepare_table
from dr.lab import Lab, load_inventory
from dr.report import Report
from dr.sites.commands import resolve_host
from dr.sites.state import rw_endpoints, stamp, wait_until

RUNBOOK = "dr-repo-loss.md"
COPY_PSQL = "cd /tmp && runuser -u postgres -- psql -XAtq -h /var/lib/kntc-dr/sock-5499 -p 5499 -d kntc"
# `kntc-dr restore` prints how long the files took and how long recovery and promotion took.
RESTORE_TIMES = re.compile(r"in ([0-9.]+) s \(.*?took ([0-9.]+) s", re.S)


def run_repo_loss(inventory: Path | None = None, report_dir: Path = Path(".data/dr-reports"), writes_s: float = 3.0,
                  log: Callable[[str], None] = print) -> tuple[Report, Path, Path]:
    inv = load_inventory(inventory)
    lab = Lab(inv)
    site = inv.primary_site
    report = Report("drill-repo-loss", "Diễn tập mất kho sao lưu repo1, khôi phục từ repo2 / loss of backup "
                    "repository repo1, restore from repo2", f"kntc-{site}")
    run_stamp = stamp()
    run_id = f"repo-loss-{run_stamp}"
    rp = f"drill-repo-loss-{run_stamp}"
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    runner = StepRunner(step_env(inv, {"RP": rp, "RUN_ID": run_id}), report, log)
    writer: Writer | None = None
    lost = copied = False
    try:
        log("[1/6] hai kho / both repositories")
        runner.run(RUNBOOK, "backups-in-both")
        runner.run(RUNBOOK, "backup-repo2", timeout=1800)
        log("[2/6] bộ ghi + điểm khôi phục / writer and restore point")
        eps = rw_endpoints(inv, site)
        prepare_table(eps[0])
        writer = Writer(run_id, eps, report_dir / f"{run_id}-acks.tsv")
        writer.start()
        wait_until(lambda: len(writer.acks) > 0, 30, "bộ ghi được xác nhận / the writer gets acknowledgements")
        time.sleep(writes_s)  # a workload duration, not a wait for a condition
        acked_before = {a.seq for a in writer.acks}  # acknowledged before the restore point is created
        runner.run(RUNBOOK, "restore-point")
        writer.stop()
        log("[3/6] mất repo1 / lose repo1")
        runner.run(RUNBOOK, "lose-repo1")
        lost = True
        runner.run(RUNBOOK, "repo1-unreadable")
        log("[4/6] khôi phục từ repo2 / restore from repo2")
        replica = resolve_host(lab, inv, f"{site}:replica")
        copied = True
        runner.run(RUNBOOK, "restore-from-repo2", timeout=2400)
        times = RESTORE_TIMES.search(runner.outputs["restore-from-repo2"])
        if times is None:
            raise DrillFailed("kntc-dr restore không in thời gian / printed no times: "
                              + runner.outputs["restore-from-repo2"][-300:])
        restore_s, promote_s = float(times[1]), float(times[2])
        log("[5/6] kiểm tra / checks")
        runner.run(RUNBOOK, "verify-copy")
        got = lab.out(replica, f"{COPY_PSQL} -c \"SELECT seq FROM {DRILL_SCHEMA}.ack WHERE run = '{run_id}'\"")
        present = {int(x) for x in got.split()}
        missing = sorted(acked_before - present)
        report.check("commit trước điểm khôi phục có trong bản sao / commits before the restore point are restored",
                     not missing and bool(acked_before),
                     f"{len(acked_before) - len(missing)} of {len(acked_before)} present in the copy restored from "
                     "repo2" + (f"; missing {missing[:10]}" if missing else ""))
        report.figures.update({"restore_seconds": restore_s, "recovery_promote_seconds": promote_s,
                               "rto_restore_seconds": runner.timings["restore-from-repo2"], "restore_point": rp,
                               "restore_host": replica.name, "commits_before_restore_point": len(acked_before)})
    except FAILURES as exc:
        report.check("diễn tập hoàn tất / drill completed", False, str(exc))
    finally:
        if writer is not None and writer.is_alive():
            writer.stop()
        log("[6/6] dọn dẹp, trả lại repo1 / clean up, put repo1 back")
        try:
            if copied:
                runner.run(RUNBOOK, "cleanup-copy")
            if lost:
                runner.run(RUNBOOK, "repo1-back", timeout=300)
        except FAILURES as exc:
            report.check("dọn dẹp / clean-up", False, f"{exc}: finish runbooks/{RUNBOOK} §5–§6 by hand")
        lab.close()
    report.figures["step_seconds"] = runner.timings
    return (report, *report.write(report_dir, f"drill-repo-loss-{run_stamp}"))
