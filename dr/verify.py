"""Restore verification: is the newest backup restorable, and is it right?

1. restore the newest backup (or --set) into a scratch directory, to the restore point that
   `kntc-dr backup` took right after it (or to the backup's consistency point without one);
2. start it on the scratch loopback port, wait until it has recovered and promoted;
3. amcheck every btree index of every database (bt_index_check with heapallindexed);
4. compare row counts and digests of the key tables with the manifest taken on the source at
   that same restore point;
5. `pgbackrest verify` over the whole repository (WAL and every backup's file checksums);
6. report pass/fail with reasons, as JSON and Markdown under <state_dir>/reports/.
"""

from __future__ import annotations

import fcntl
import time
from datetime import UTC, datetime
from pathlib import Path

from dr import ops, proc, sql
from dr.config import DrConfig
from dr.errors import DrError
from dr.pgbackrest import BackupInfo, PgBackRest, ProgressFn, RestoreTarget
from dr.report import Report


def verify_restore(cfg: DrConfig, set_label: str | None = None, keep: bool = False,
                   progress: ProgressFn | None = None) -> tuple[Report, Path, Path]:
    pgbr = PgBackRest(cfg)
    info = pgbr.info()
    report = Report("verify-restore", "Kiểm tra khôi phục / Restore verification", cfg.stanza)
    backup = info.backup(set_label) if set_label else info.newest
    if backup is None:
        report.check("backup", False,
                     f"stanza {cfg.stanza} không có bản sao lưu / has no backup ({info.status_message})")
        return (report, *report.write(cfg.report_dir, f"verify-none-{_stamp()}"))
    report.figures.update({"backup": backup.label, "backup_type": backup.type,
                           "backup_stop": backup.stop.isoformat(timespec="seconds"),
                           "database_bytes": backup.size, "repository_bytes": backup.repo_size})
    manifest = ops.manifest_for(cfg, backup)
    # Without a manifest the best we can do is the backup's own consistency point.
    target = RestoreTarget("name", manifest["restore_point"]) if manifest else RestoreTarget("immediate")
    report.figures["restore_target"] = str(target)

    root = cfg.scratch_root / "verify"
    # One verification at a time per state directory: they share the scratch directory and port.
    lock = (cfg.state_dir / "verify-restore.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        lock.close()
        raise DrError("một kiểm tra khôi phục khác đang chạy / another verify-restore is running "
                      f"({cfg.state_dir / 'verify-restore.lock'})") from exc
    try:
        return _verify(cfg, pgbr, report, backup, target, manifest, root, keep, progress)
    finally:
        lock.close()


def _verify(cfg: DrConfig, pgbr: PgBackRest, report: Report, backup: BackupInfo, target: RestoreTarget,
            manifest: dict | None, root: Path, keep: bool, progress: ProgressFn | None) -> tuple[Report, Path, Path]:
    ops.wipe_scratch(cfg, root)
    datadir = root / "pg"
    cluster = ops.scratch_cluster(cfg, datadir)
    restored = False
    try:
        t0 = time.monotonic()
        try:
            out = ops.restore(cfg, target, datadir, set_label=backup.label, start_port=cfg.scratch_port,
                              progress=progress)
            restored = True
            report.check("restore", True, f"{out.bytes / 1e6:.1f} MB in {out.restore_seconds:.1f} s "
                         f"({out.mb_per_s:.1f} MB/s), started and promoted in {out.start_seconds:.1f} s")
            report.figures.update({"restore_seconds": round(out.restore_seconds, 2),
                                   "start_promote_seconds": round(out.start_seconds or 0, 2),
                                   "restore_mb_per_s": round(out.mb_per_s, 1),
                                   "rto_seconds": round(time.monotonic() - t0, 2)})
        except DrError as exc:
            report.check("restore", False, str(exc))

        if restored:
            base = f"host={cluster.socket_dir} port={cluster.port} user=postgres application_name=kntc-dr"
            try:
                am = proc.call_as_postgres(sql.amcheck_all, base)
                report.figures["amcheck_indexes"] = am["indexes_checked"]
                report.figures["amcheck_seconds"] = am["seconds"]
                fails = am["failures"]
                report.check("amcheck", not fails and am["indexes_checked"] > 0,
                             f"{am['indexes_checked']} btree indexes in {len(am['databases'])} databases"
                             + (f"; {len(fails)} corrupt: " + "; ".join(f"{f['database']}.{f['index']}: {f['error']}"
                                                                         for f in fails[:5]) if fails else ""))
            except DrError as exc:
                report.check("amcheck", False, str(exc))
            _compare(report, cfg, manifest, base)
        else:
            report.check("amcheck", False, "không chạy: khôi phục thất bại / not run: the restore failed")
            report.check("key tables", False, "không chạy: khôi phục thất bại / not run: the restore failed")
    finally:
        if cluster.is_running():
            cluster.stop("fast")
        if not keep and report.passed:
            ops.wipe_scratch(cfg, root)

    try:
        v = pgbr.verify()
        report.check("pgbackrest verify", v.ok, "repository ok (WAL and backup file checksums)" if v.ok
                     else "; ".join(v.problems))
    except DrError as exc:
        report.check("pgbackrest verify", False, str(exc))
    return (report, *report.write(cfg.report_dir, f"verify-{backup.label}-{_stamp()}"))


def _compare(report: Report, cfg: DrConfig, manifest: dict | None, base: str) -> None:
    if manifest is None:
        report.check("key tables", False, "không có manifest cho bản sao lưu này / no manifest for this backup (take "
                     "backups with `kntc-dr backup`): row counts and digests not compared")
        return
    tables = list(manifest["tables"])
    try:
        got = proc.call_as_postgres(sql.table_digests, f"{base} dbname={manifest['database']}", tables)
    except DrError as exc:
        report.check("key tables", False, str(exc))
        return
    diffs = []
    rows = 0
    for t in tables:
        want, have = manifest["tables"][t], got.get(t, {})
        if want != have:
            diffs.append(f"{t}: source {_show(want)} ≠ restored {_show(have)}")
        rows += int(want.get("rows", 0))
    absent = [t for t in tables if not manifest["tables"][t].get("present")]
    report.figures["key_table_rows"] = rows
    report.check("key tables", not diffs and len(absent) < len(tables),
                 (f"{len(tables) - len(absent)} tables, {rows} rows: counts and digests equal at restore point "
                  f"{manifest['restore_point']}" + (f" (absent on source: {', '.join(absent)})" if absent else ""))
                 if not diffs else "; ".join(diffs))


def _show(d: dict) -> str:
    return f"{d.get('rows')} rows/{d.get('digest', '-')}" if d.get("present") else "absent"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
