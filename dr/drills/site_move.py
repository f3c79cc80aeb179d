"""The DR first: the primary role moved to a site on a newer PostgreSQL and back (`kntc-dr drill
site-move`), on a lab whose sites run different Debian releases (KNTC_LAB_SUITE=dc=bookworm,dr=trixie).

The drill runs the steps of runbooks/upgrade-postgres.md's site-by-site section as written (`kntc-dr
site move`, `point-app`): the new site's empty cluster is filled by logical replication from the
primary site, the primary role moves to it, the old site follows it back, and the role returns. A
writer commits one row per transaction through the primary site's HAProxy throughout and moves to
the other site's when the runbook says the writes have moved. Every acknowledged commit must be
on the final primary, and the rows written on the new site must have come back before the return.

Figures: the copy (prepare to every table following), each cut-over's write gap (the last commit
acknowledged by one site to the first by the other) and its catch-up, and the versions served.

`kntc-dr drill site-move-keep` goes on to the end of the move: the new site is kept, the old one's
hosts are made anew on the new release (the lab's reinstall), provisioned as the new site's physical
standby, and a site switchover brings the primary role home, the writer running throughout; then
`site.yml` joins both sites' backup repositories again. The lab ends on the new release at both sites.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dr.drills.steps import FAILURES, DrillFailed, StepRunner, remake_lab_site, step_env
from dr.drills.writer import Writer, prepare_table, present_seqs, rpo
from dr.lab import Inventory, Lab, load_inventory
from dr.report import Report
from dr.sites.state import Endpoint, rw_endpoints, stamp, wait_until

RUNBOOK = "upgrade-postgres.md"
SWITCHOVER = "dr-site-switchover.md"


def _version(lab: Lab, inv: Inventory, site: str) -> int:
    """The major version the site's primary runs."""
    db = inv.db(site)[0]
    return int(lab.sql(db, "SHOW server_version_num")) // 10000


def _served_version(ep: Endpoint) -> int:
    """The major version a site's read-write endpoint serves."""
    import psycopg

    with psycopg.connect(ep.conninfo, autocommit=True) as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


def _json(out: str) -> dict[str, Any]:
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


def _gap(writer: Writer, src: str, dst: str, t0: float) -> tuple[float, float]:
    """(write gap, first commit through `dst` after t0): from the last commit through `src`."""
    first = writer.acks_since(t0, dst)
    if not first:
        raise DrillFailed(f"không commit nào qua {dst} / no commit acknowledged through {dst}")
    last = max((a.at for a in writer.acks if a.site == src and a.at < first[0].at), default=t0)
    return round(first[0].at - last, 2), first[0].at


def _hand_over(runner: StepRunner, writer: Writer, inv: Inventory, step: str, apps: str, src: str,
               dst: str) -> tuple[float, dict[str, Any], float, float]:
    """One of the runbook's hand-overs (the cut-over, the return) and the writer following it:
    (its start, its facts, the write gap, the first commit through `dst`). The apps' step is not
    fatal: the sites are moved back even when a case service does not come up."""
    t0, _ = runner.run(RUNBOOK, step)
    facts = _json(runner.outputs[step]).get("facts", {})
    writer.set_endpoints(rw_endpoints(inv, dst))
    runner.run(RUNBOOK, apps, fatal=False)
    gap, first = _gap(writer, src, dst, t0)
    return t0, facts, gap, first


def run_site_move(inventory: Path | None = None, report_dir: Path = Path(".data/dr-reports"),
                  stay_s: float = 5.0, log: Callable[[str], None] = print) -> tuple[Report, Path, Path]:
    inv = load_inventory(inventory)
    lab = Lab(inv)
    old = inv.primary_site
    new = inv.other(old)
    report = Report("drill-site-move", f"Diễn tập chuyển site sang phiên bản mới {old} → {new} → {old} / "
                    f"the primary role to the newer PostgreSQL of {new} and back", "-")
    run_id = f"move-{stamp()}"
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    runner = StepRunner(step_env(inv), report, log)
    writer: Writer | None = None
    try:
        log("[1/6] kiểm tra trước / preflight")
        versions = {site: _version(lab, inv, site) for site in (old, new)}
        report.check("site mới chạy phiên bản mới hơn / the new site runs a newer PostgreSQL",
                     versions[new] > versions[old], f"{old}: {versions[old]}, {new}: {versions[new]}")
        if versions[new] <= versions[old]:
            raise DrillFailed(f"{new} runs PostgreSQL {versions[new]}, not newer than {old}'s {versions[old]}: "
                              "bring the lab up with KNTC_LAB_SUITE=dc=bookworm,dr=trixie")
        runner.run(RUNBOOK, "move-status-before")
        # a drill before this one may have left its copy there: the runbook's way to start again
        runner.run(RUNBOOK, "move-reset")
        prepare_table(rw_endpoints(inv, old)[0])
        log("[2/6] bộ ghi / writer")
        writer = Writer(run_id, rw_endpoints(inv, old), report_dir / f"{run_id}-acks.tsv")
        writer.start()
        wait_until(lambda: len(writer.acks) > 0, 30, "bộ ghi được xác nhận / the writer gets acknowledgements")
        log(f"[3/6] chép sang {new} / copy into {new}")
        runner.run(RUNBOOK, "move-check")
        t_copy, _ = runner.run(RUNBOOK, "move-prepare")
        _, t_ready = runner.run(RUNBOOK, "move-wait", timeout=1900)
        log(f"[4/6] chuyển sang {new} / cut-over to {new}")
        _, cut, there_gap, t_there = _hand_over(runner, writer, inv, "move-cutover", "move-apps-to-new", old, new)
        time.sleep(stay_s)  # the new site serves writes for a while
        on_new = [a.seq for a in writer.acks_since(t_there, new)]
        # The way back follows: what the new site took is on the old one before the return.
        came_back = wait_until(lambda: set(on_new) <= present_seqs(rw_endpoints(inv, old)[0], run_id), 60,
                               f"{old} nhận lại các ghi ở {new} / {old} has the rows written on {new}")
        report.check(f"{old} theo {new} / {old} follows {new}", bool(came_back and on_new),
                     f"{len(on_new)} commits acknowledged through {new} were on {old} before the return")
        log(f"[5/6] quay lại {old} / back to {old}")
        t_back, back, back_gap, _ = _hand_over(runner, writer, inv, "move-rollback", "move-apps-to-old", new, old)
        wait_until(lambda: writer.acks_since(time.time() - 1, old), 30,
                   f"bộ ghi ghi qua {old} / the writer commits through {old}")
        writer.stop()
        log("[6/6] kiểm tra / checks")
        acks = list(writer.acks)
        lost, span, seqs = rpo(acks, present_seqs(rw_endpoints(inv, old)[0], run_id))
        report.check("không mất commit đã xác nhận / no acknowledged commit lost", lost == 0 and bool(acks),
                     f"{len(acks) - lost} of {len(acks)} acknowledged commits present on {old} after the return"
                     + (f"; lost {seqs[:10]}" if lost else ""))
        served = [a for a in acks if t_there <= a.at < t_back and a.site == new]
        report.check(f"{new} phục vụ ghi / {new} served writes", bool(served),
                     f"{len(served)} commits acknowledged through {new}'s HAProxy on PostgreSQL {versions[new]}")
        gaps = [b.at - a.at for a, b in itertools.pairwise(acks)]
        report.figures.update({
            "postgres_old": versions[old], "postgres_new": versions[new],
            "copy_seconds": round(t_ready - t_copy, 2),
            "cutover_write_gap_seconds": there_gap, "cutover_catch_up_seconds": cut.get("catch_up_s"),
            "return_write_gap_seconds": back_gap, "return_catch_up_seconds": back.get("catch_up_s"),
            "rpo_lost_commits": lost, "rpo_seconds": round(span, 3),
            "writer_commits": len(acks), "writer_errors": writer.errors,
            "longest_write_gap_seconds": round(max(gaps, default=0.0), 2),
            "step_seconds": runner.timings,
        })
        # The new site's copy is left empty again, ready for the next rehearsal or the real move.
        runner.run(RUNBOOK, "move-reset", fatal=False)
    except FAILURES as exc:
        report.check("diễn tập hoàn tất / drill completed", False, str(exc))
    finally:
        if writer is not None and writer.is_alive():
            writer.stop()
        lab.close()
    return (report, *report.write(report_dir, f"drill-site-move-{stamp()}"))


def run_site_move_keep(inventory: Path | None = None, report_dir: Path = Path(".data/dr-reports"),
                       log: Callable[[str], None] = print) -> tuple[Report, Path, Path]:
    inv = load_inventory(inventory)
    lab = Lab(inv)
    old = inv.primary_site
    new = inv.other(old)
    report = Report("drill-site-move-keep", f"Diễn tập chuyển hẳn sang phiên bản mới: {new} giữ, {old} dựng lại "
                    f"theo {new}, primary về {old} / the move kept: {old} rebuilt on the new release as "
                    f"{new}'s standby, the primary role home", "-")
    run_id = f"keep-{stamp()}"
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    runner = StepRunner(step_env(inv), report, log)
    writer: Writer | None = None
    try:
        log("[1/7] kiểm tra trước / preflight")
        versions = {site: _version(lab, inv, site) for site in (old, new)}
        if versions[new] <= versions[old]:
            raise DrillFailed(f"{new} runs PostgreSQL {versions[new]}, not newer than {old}'s {versions[old]}: "
                              "bring the lab up with KNTC_LAB_SUITE=dc=bookworm,dr=trixie")
        runner.run(RUNBOOK, "move-status-before")
        runner.run(RUNBOOK, "move-reset")
        prepare_table(rw_endpoints(inv, old)[0])
        log("[2/7] bộ ghi / writer")
        writer = Writer(run_id, rw_endpoints(inv, old), report_dir / f"{run_id}-acks.tsv")
        writer.start()
        wait_until(lambda: len(writer.acks) > 0, 30, "bộ ghi được xác nhận / the writer gets acknowledgements")
        log(f"[3/7] chép sang {new} rồi chuyển / copy into {new}, cut over")
        runner.run(RUNBOOK, "move-check")
        runner.run(RUNBOOK, "move-prepare")
        runner.run(RUNBOOK, "move-wait", timeout=1900)
        _, _, there_gap, t_there = _hand_over(runner, writer, inv, "move-cutover", "move-apps-to-new", old, new)
        runner.run(RUNBOOK, "move-finish")
        runner.run(RUNBOOK, "move-backup-new", timeout=1800)
        log(f"[4/7] dựng lại {old} trên bản phát hành của {new} / {old}'s hosts made anew like {new}'s")
        # The old site's hosts get new host keys: this process's SSH connections (whose known hosts
        # are read once) are not used again; the steps are processes of their own.
        lab.close()
        remade_s = remake_lab_site(old, like=new)
        inv = load_inventory(inventory)  # it now says the old site's hosts run the new release
        runner.env = step_env(inv)
        t_build, _ = runner.run(RUNBOOK, "rebuild-old", timeout=2400)
        _, t_following = runner.run(RUNBOOK, "old-follows-new", timeout=600)
        log(f"[5/7] primary về {old} / the primary role home to {old}")
        t_home, _ = runner.run(SWITCHOVER, "demote-dr")
        runner.run(SWITCHOVER, "caught-up-dc")
        runner.run(SWITCHOVER, "promote-dc")
        writer.set_endpoints(rw_endpoints(inv, old))
        rebuilt = _served_version(rw_endpoints(inv, old)[0])
        report.check(f"{old} chạy phiên bản của {new} / {old} runs {new}'s version", rebuilt == versions[new],
                     f"{old}'s primary, through its HAProxy: PostgreSQL {rebuilt}; {new}: {versions[new]}")
        runner.run(SWITCHOVER, "apps-to-dc", fatal=False)
        home_gap, _ = _gap(writer, new, old, t_home)
        runner.run(SWITCHOVER, "dr-follows-dc")
        wait_until(lambda: writer.acks_since(time.time() - 1, old), 30,
                   f"bộ ghi ghi qua {old} / the writer commits through {old}")
        log("[6/7] nối lại các kho sao lưu / site.yml joins the repositories again")
        runner.run(RUNBOOK, "move-join-repositories", timeout=2400)
        runner.run(RUNBOOK, "move-restart-standby")
        runner.run(RUNBOOK, "move-status-after")
        writer.stop()
        log("[7/7] kiểm tra / checks")
        acks = list(writer.acks)
        lost, span, seqs = rpo(acks, present_seqs(rw_endpoints(inv, old)[0], run_id))
        report.check("không mất commit đã xác nhận / no acknowledged commit lost", lost == 0 and bool(acks),
                     f"{len(acks) - lost} of {len(acks)} acknowledged commits present on {old} at the end"
                     + (f"; lost {seqs[:10]}" if lost else ""))
        served = [a for a in acks if t_there <= a.at < t_home and a.site == new]
        report.check(f"{new} phục vụ ghi khi {old} dựng lại / {new} served writes while {old} was rebuilt",
                     bool(served), f"{len(served)} commits acknowledged through {new}'s HAProxy")
        gaps = [b.at - a.at for a, b in itertools.pairwise(acks)]
        report.figures.update({
            "postgres_old": versions[old], "postgres_new": versions[new], f"postgres_{old}_after": rebuilt,
            "cutover_write_gap_seconds": there_gap, "home_write_gap_seconds": home_gap,
            "hosts_made_seconds": round(remade_s, 1),
            "rebuild_to_following_seconds": round(t_following - t_build, 1),
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
        lab.close()
    return (report, *report.write(report_dir, f"drill-site-move-keep-{stamp()}"))
