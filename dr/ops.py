"""The operator's actions (one function per `kntc-dr` command), shared by the CLI and the drills."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dr import pg, proc
from dr.config import DrConfig
from dr.errors import DrError, RestoreRefused
from dr.pgbackrest import BackupInfo, BackupType, PgBackRest, ProgressFn, RestoreTarget

MANIFEST_KEY = "kntc-manifest"


def source_conninfo(cfg: DrConfig, database: str | None = None) -> str:
    if cfg.source_dsn:
        # A repository host reaches the primary over TLS as the backup role (its password in a
        # passfile the dsn names); the database named here wins over one in the dsn.
        return f"{cfg.source_dsn} dbname={database or cfg.database} application_name=kntc-dr"
    return (f"host={cfg.pg_socket} port={cfg.pg_port} user=postgres dbname={database or cfg.database} "
            "application_name=kntc-dr")


def restore_point_name(label: str) -> str:
    return f"kntc-dr-{label}"


# -- backup ---------------------------------------------------------------------------------
def backup(cfg: DrConfig, type: BackupType, progress: ProgressFn | None = None) -> tuple[BackupInfo, dict[str, Any]]:
    """Back up, then record what the key tables hold at a restore point right after the backup.

    The manifest (restore point + digests) travels with the backup as a pgBackRest annotation
    (inside the encrypted backup.info) and is also kept under <state_dir>/manifests/.
    """
    from dr import sql  # psycopg is imported only by the commands that talk SQL (CLI start-up time)

    pgbr = PgBackRest(cfg)
    info = pgbr.backup(type, progress)
    try:
        manifest = proc.call_as_postgres(sql.take_manifest, source_conninfo(cfg), restore_point_name(info.label),
                                         list(cfg.key_tables))
    except DrError as exc:
        raise DrError(f"sao lưu {info.label} xong nhưng không lập được manifest / backup {info.label} done but its "
                      f"manifest failed (verify-restore will report it): {exc}") from exc
    manifest["backup_label"] = info.label
    # The restore point must be in the repository before anyone restores to it: check switches
    # WAL and waits for the segment to be archived.
    pgbr.check()
    pgbr.annotate(info.label, {MANIFEST_KEY: json.dumps(manifest, separators=(",", ":"), ensure_ascii=True)})
    proc.make_dir(cfg.manifest_dir, 0o750)
    (cfg.manifest_dir / f"{info.label}.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return info, manifest


def manifest_for(cfg: DrConfig, info: BackupInfo) -> dict[str, Any] | None:
    raw = info.annotations.get(MANIFEST_KEY)
    if raw:
        return json.loads(raw)
    f = cfg.manifest_dir / f"{info.label}.json"
    return json.loads(f.read_text()) if f.exists() else None


def restore_point(cfg: DrConfig, name: str) -> dict[str, str]:
    """pg_create_restore_point on the source, then wait until its WAL is archived."""
    if not name or len(name) > 63:
        raise DrError("tên điểm khôi phục 1–63 ký tự / restore point name must have 1–63 characters")
    from dr import sql

    rp = proc.call_as_postgres(sql.create_restore_point, source_conninfo(cfg), name)
    PgBackRest(cfg).check()
    return rp


# -- restore --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RestoreOutcome:
    target: str
    target_dir: str
    label: str | None
    bytes: int
    files: int
    restore_seconds: float
    start_seconds: float | None  # start + recovery + promotion, when started
    port: int | None
    note: str

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.restore_seconds if self.restore_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "mb_per_s": round(self.mb_per_s, 1)}


def scratch_cluster(cfg: DrConfig, datadir: Path, port: int | None = None) -> pg.Cluster:
    # Socket and log live in the state directory (postgres owns it), wherever the copy is.
    port = port or cfg.scratch_port
    return pg.Cluster(datadir=datadir, port=port, socket_dir=cfg.state_dir / f"sock-{port}",
                      log_file=cfg.state_dir / "log" / f"scratch-{port}.log", pg_bin=cfg.pg_bin)


def restore(cfg: DrConfig, target: RestoreTarget, target_dir: Path, *, set_label: str | None = None,
            delta: bool = False, scratch: bool = True, start_port: int | None = None,
            progress: ProgressFn | None = None) -> RestoreOutcome:
    target_dir = target_dir.resolve()
    if target_dir == cfg.pg_path.resolve() and scratch:
        raise RestoreRefused(f"từ chối khôi phục / refusing to restore: {target_dir} is the source pg_path; a restore "
                             "over the site's own data directory needs --no-scratch (see runbooks/restore.md)")
    note = pg.check_target_dir(target_dir, delta, cfg.pg_bin)
    if start_port is not None and not scratch:
        raise DrError("--start-port chỉ dùng cho bản sao tạm / only for scratch copies (--scratch)")
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    proc.make_dir(target_dir, 0o700)
    pgbr = PgBackRest(cfg)
    res = pgbr.restore(target, target_dir, set_label=set_label, delta=delta, scratch=scratch, progress=progress)
    label = res.label or set_label
    size = res.size
    if label:
        with contextlib.suppress(DrError):
            size = pgbr.info().backup(label).size
    start_s = None
    if start_port is not None:
        cluster = scratch_cluster(cfg, target_dir, start_port)
        proc.make_dir(cluster.socket_dir, 0o750)
        # The log's folder exists where kntc-dr wrote pgbackrest.conf itself, not where Ansible did.
        proc.make_dir(cluster.log_file.parent, 0o750)
        pg.prepare_scratch(target_dir, start_port, cluster.socket_dir)
        t0 = time.monotonic()
        cluster.start(timeout=cfg.start_timeout)
        cluster.wait_promoted(cfg.start_timeout)
        start_s = time.monotonic() - t0
    return RestoreOutcome(str(target), str(target_dir), label, size, res.files, res.seconds, start_s, start_port, note)


def wipe_scratch(cfg: DrConfig, root: Path) -> None:
    """Remove a previous scratch copy under `root` (stopping it if it is ours and running)."""
    datadir = root / "pg"
    if datadir.exists():
        c = scratch_cluster(cfg, datadir)
        if c.is_running():
            c.stop("immediate")
        pg.check_target_dir(datadir, delta=True, pg_bin=cfg.pg_bin)
    if root.exists():
        shutil.rmtree(root)


def now_utc() -> datetime:
    return datetime.now(UTC)
