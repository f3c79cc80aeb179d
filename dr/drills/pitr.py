"""PITR drill (`kntc-dr drill pitr`, runbooks/dr-pitr.md): a mistaken DELETE, undone by a restore.

1. a sandbox source cluster archives WAL into an encrypted pgBackRest repository; full backup;
2. a writer commits one row per transaction and records every acknowledged commit (sequence
   number and acknowledgement time) in a file;
3. someone deletes every row of kntc.party by mistake while the writer keeps writing;
4. the operator restores into a scratch directory to the mistake's start time (what the
   application log says) or to a restore point taken before it (`--target name`), and starts it;
5. checks: the deleted rows are back, and every commit acknowledged before the target is present;
6. figures: RPO (acknowledged commits lost, and their time span), RTO (restore + recovery +
   promotion), restore throughput, and a plain `cp -a` of the same data directory to compare.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg

from dr import config, ops, pg, proc, sandbox, sql
from dr.errors import DrError
from dr.pgbackrest import PgBackRest, RestoreTarget
from dr.report import Report

STANZA = "kntc-drill"


def _writer(conninfo: str, acks: IO[str], stop: Any, ncases: int, pause_s: float) -> None:
    """One INSERT per transaction; a line per acknowledged commit, flushed before the next one."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        seq = 0
        while not stop.is_set():
            seq += 1
            conn.execute("INSERT INTO kntc.case_event (case_id, kind, note, writer_seq) "
                         "VALUES (%s, 'note', 'ghi của diễn tập / drill writer', %s)", (1 + seq % ncases, seq))
            acks.write(f"{seq}\t{time.time():.6f}\n")
            acks.flush()
            if pause_s:
                time.sleep(pause_s)


def _mistake(conninfo: str) -> dict[str, Any]:
    """DELETE FROM kntc.party without a WHERE clause, the way it happens: in one transaction."""
    with psycopg.connect(conninfo) as conn:
        issued = time.time()
        start, xid = conn.execute("SELECT now(), pg_current_xact_id()::text").fetchone()
        deleted = conn.execute("DELETE FROM kntc.party").rowcount
        conn.commit()
        committed = conn.execute("SELECT pg_xact_commit_timestamp(%s::xid)", (xid,)).fetchone()[0]
        conn.commit()
    return {"issued_epoch": issued, "start": start.astimezone(UTC).isoformat(), "xid": xid, "deleted": deleted,
            "commit": committed.astimezone(UTC).isoformat() if committed else None}


def _scratch_state(conninfo: str) -> dict[str, Any]:
    with psycopg.connect(conninfo) as conn:
        parties = conn.execute("SELECT count(*) FROM kntc.party").fetchone()[0]
        seqs = [r[0] for r in conn.execute("SELECT writer_seq FROM kntc.case_event WHERE writer_seq IS NOT NULL")]
    return {"parties": parties, "seqs": seqs}


def run_pitr_drill(workdir: Path, port: int, *, scale: int = 2000, before_s: float = 3.0, after_s: float = 1.5,
                   target_kind: str = "time", writer_pause_s: float = 0.002,
                   log: Callable[[str], None] = print) -> tuple[Report, Path, Path]:
    workdir = workdir.resolve()
    report = Report("drill-pitr", "Diễn tập PITR: xóa nhầm kntc.party / PITR drill: mistaken DELETE of kntc.party",
                    STANZA)
    log(f"[1/7] cụm nguồn + kho mã hóa / source cluster and encrypted repository in {workdir} (port {port})")
    sandbox.down(workdir, purge=True)
    cfg = config.load(sandbox.up(workdir, port, STANZA, scratch_port=port + 1, scale=scale))
    src = ops.source_conninfo(cfg)
    try:
        log("[2/7] sao lưu đầy đủ / full backup")
        info, _ = ops.backup(cfg, "full")
        parties_before = proc.call_as_postgres(sql.run_sql, src, ["SELECT count(*) FROM kntc.party"])[0][0][0]

        log(f"[3/7] bộ ghi chạy {before_s:.1f} s / writer runs for {before_s:.1f} s")
        ack_path = workdir / "acks.tsv"
        stop = proc.multiprocessing.get_context("fork").Event()
        with ack_path.open("w") as acks:
            writer = proc.start_as_postgres(_writer, src, acks, stop, scale, writer_pause_s)
            try:
                time.sleep(before_s)  # a workload duration, not a wait for a condition
                rp = None
                if target_kind == "name":
                    rp = ops.restore_point(cfg, "truoc-xoa-nham")
                log("[4/7] xóa nhầm / the mistake: DELETE FROM kntc.party")
                mistake = proc.call_as_postgres(_mistake, src)
                time.sleep(after_s)
            finally:
                stop.set()
                writer.join(30)
        if writer.exitcode != 0:
            raise DrError(f"bộ ghi lỗi / the writer failed (exit {writer.exitcode})")
        # The WAL holding the mistake must be in the repository before the restore can replay to it.
        PgBackRest(cfg).check()

        acks_list = [(int(a), float(b)) for a, b in (ln.split("\t") for ln in ack_path.read_text().splitlines())]
        if rp is not None:
            target = RestoreTarget("name", rp["name"])
            boundary = datetime.fromisoformat(rp["time"]).timestamp()
        else:
            target = RestoreTarget.parse(f"time:{mistake['start']}")
            boundary = mistake["issued_epoch"]
        before = {s: t for s, t in acks_list if t < mistake["issued_epoch"]}
        before_target = {s: t for s, t in before.items() if t < boundary}

        log(f"[5/7] khôi phục vào thư mục tạm / restore into scratch to {target}")
        scratch_dir = workdir / "scratch" / "pg"
        t0 = time.monotonic()
        out = ops.restore(cfg, target, scratch_dir, start_port=port + 1)
        rto = time.monotonic() - t0
        scratch = ops.scratch_cluster(cfg, scratch_dir, port + 1)
        state = proc.call_as_postgres(_scratch_state, scratch.conninfo("kntc"))

        log("[6/7] kiểm tra / checks")
        present = set(state["seqs"])
        lost = sorted(set(before) - present)
        lost_before_target = sorted(set(before_target) - present)
        after = {s for s, _ in acks_list} - set(before)
        report.check("xóa nhầm được hoàn tác / mistake undone", state["parties"] == parties_before > 0,
                     f"kntc.party: {state['parties']} rows restored, {parties_before} before the mistake, "
                     f"{mistake['deleted']} deleted")
        report.check("commit đã xác nhận trước mốc khôi phục / acknowledged commits before the target",
                     not lost_before_target,
                     f"{len(before_target) - len(lost_before_target)} of {len(before_target)} present"
                     + (f"; lost: {lost_before_target[:10]}" if lost_before_target else ""))
        if target.kind == "time":
            report.check("commit đã xác nhận trước sự cố / acknowledged commits before the mistake", not lost,
                         f"{len(before) - len(lost)} of {len(before)} present"
                         + (f"; lost: {lost[:10]}" if lost else ""))
        rpo_s = (max(before.values()) - max((before[s] for s in before if s in present), default=0.0)) if lost else 0.0

        log("[7/7] so sánh với cp -a / plain copy of the same data directory")
        scratch.stop("fast")
        data_bytes = pg.du_bytes(scratch_dir)
        copy_dir = workdir / "scratch" / "copy"
        t1 = time.monotonic()
        subprocess.run(["cp", "-a", str(scratch_dir), str(copy_dir)], check=True)
        subprocess.run(["sync", "-f", str(copy_dir)], check=True)
        copy_s = time.monotonic() - t1

        report.figures.update({
            "backup": info.label, "target": str(target), "mistake_start": mistake["start"],
            "mistake_commit": mistake["commit"],
            "writer_commits": len(acks_list), "commits_before_mistake": len(before),
            "commits_after_mistake_discarded": len(after - present),
            "commits_after_mistake_present": len(after & present),
            "rpo_lost_commits_before_mistake": len(lost), "rpo_seconds": round(rpo_s, 3),
            "restore_seconds": round(out.restore_seconds, 2),
            "recovery_promote_seconds": round(out.start_seconds or 0, 2), "rto_seconds": round(rto, 2),
            "backup_database_mb": round(out.bytes / 1e6, 1),
            "restore_mb_per_s": round(out.mb_per_s, 1),
            "data_directory_mb": round(data_bytes / 1e6, 1), "cp_a_seconds": round(copy_s, 2),
            "cp_a_mb_per_s": round(data_bytes / 1e6 / copy_s, 1) if copy_s else 0,
        })
    finally:
        sandbox.down(workdir)
    return (report, *report.write(cfg.report_dir, f"drill-pitr-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"))
