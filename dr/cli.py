"""`kntc-dr`: backup, restore, restore verification and DR drills (runbooks/restore.md, runbooks/dr-pitr.md).

Errors are one line on stderr, Vietnamese first, with an exit code per kind: 1 general, 2 config,
3 restore refused, 4 verification or drill failed, 5 PostgreSQL, 25–125 pgBackRest's own code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from dr import config as drconfig
from dr import metrics, ops, sandbox
from dr.config import DrConfig
from dr.errors import DrError, VerificationFailed, one_line
from dr.pgbackrest import BackupType, PgBackRest, ProgressFn, RestoreTarget, archive_settings, write_conf
from dr.report import Report
from dr.sites.commands import app as site_app
from dr.upgrade_commands import app as upgrade_app

app = typer.Typer(help="Sao lưu, khôi phục và diễn tập DR của KNTC / KNTC backup, restore and DR drills.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
drill = typer.Typer(help="Diễn tập / drills", no_args_is_help=True)
sandbox_app = typer.Typer(help="Cụm nguồn cục bộ để thử runbook / a local source cluster to try the runbooks on",
                          no_args_is_help=True)
app.add_typer(drill, name="drill")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(site_app, name="site")
app.add_typer(upgrade_app, name="upgrade")
out = Console(width=None if sys.stdout.isatty() else 200, soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_state: dict[str, Path | int | None] = {"config": None, "repo": None}


@app.callback()
def _main(config: Annotated[Path | None, typer.Option("--config", "-c", help="dr.toml (default: $KNTC_DR_CONFIG, "
                                                        "then /etc/kntc-dr/dr.toml)")] = None,
          repo: Annotated[int | None, typer.Option(
              "--repo", min=1, max=4, help="kho / repository index in pgbackrest.conf (default: the configuration's; "
              "a database host's configuration names every repository)")] = None) -> None:
    _state["config"] = config
    _state["repo"] = repo


def cfg() -> DrConfig:
    path = _state["config"]
    c = drconfig.load(path if isinstance(path, Path) else None)
    repo = _state["repo"]
    # A database host reaches every repository through one pgbackrest.conf; when one is lost, the
    # operator names the one to read or restore from (runbooks/dr-repo-loss.md).
    return dataclasses.replace(c, repo=repo) if isinstance(repo, int) else c


@contextmanager
def progress_bar(what: str) -> Iterator[ProgressFn]:
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  TextColumn("[dim]{task.fields[file]}"), console=err, transient=False,
                  disable=not err.is_terminal and not os.environ.get("KNTC_DR_PROGRESS")) as p:
        task = p.add_task(what, total=100, file="")

        def update(pct: float, file: str) -> None:
            p.update(task, completed=pct, file=Path(file).name)

        yield update
        p.update(task, completed=100, file="")


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


@app.command()
def configure() -> None:
    """Viết pgbackrest.conf (tạo mật khẩu kho nếu chưa có) / write pgbackrest.conf and the archive settings."""
    c = cfg()
    path = write_conf(c, create_passphrase=True)
    out.print(f"đã ghi / written: {path}")
    out.print("# postgresql.conf (hoặc ALTER SYSTEM) / put these in postgresql.conf:")
    for k, v in archive_settings(c).items():
        print(f"{k} = '{v}'")


@app.command("stanza-create")
def stanza_create() -> None:
    """Tạo stanza trong kho / create the stanza in the repository."""
    PgBackRest(cfg()).stanza_create()
    out.print("stanza-create: xong / done")


@app.command()
def check() -> None:
    """Kiểm tra lưu trữ WAL / check that WAL archiving reaches the repository."""
    PgBackRest(cfg()).check()
    out.print("check: WAL được lưu trữ / WAL archiving works")


@app.command()
def backup(type: Annotated[str, typer.Option("--type", help="full | diff | incr")] = "incr") -> None:
    """Sao lưu, rồi ghi điểm khôi phục + manifest bảng chính / back up, then record a restore point and manifest."""
    c = cfg()
    if type not in ("full", "diff", "incr"):
        raise DrError(f"loại sao lưu không hợp lệ / invalid backup type {type!r}: full | diff | incr")
    bt: BackupType = type  # type: ignore[assignment]
    t0 = time.monotonic()
    try:
        with progress_bar(f"sao lưu / backup {type}") as p:
            info, manifest = ops.backup(c, bt, p)
    except BaseException:
        metrics.record_backup(c, type, False, time.monotonic() - t0)
        raise
    metrics.record_backup(c, type, True, time.monotonic() - t0)
    rows = sum(int(t.get("rows", 0)) for t in manifest["tables"].values())
    out.print(f"sao lưu xong / backup done: {info.label} ({info.type}) {_mb(info.size)} database, "
              f"{_mb(info.repo_delta)} written to the repository in {(info.stop - info.start).total_seconds():.0f} s")
    out.print(f"restore point: {manifest['restore_point']} at {manifest['lsn']} ({len(manifest['tables'])} key tables, "
              f"{rows} rows)")


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json", help="máy đọc / machine-readable")] = False) -> None:
    """Các bản sao lưu trong kho / the backups in the repository."""
    c = cfg()
    s = PgBackRest(c).info()
    if as_json:
        print(json.dumps({"stanza": s.name, "repo": c.repo or None, "ok": s.ok, "status": s.status_message,
                          "cipher": s.cipher,
                          "backups": [{**b.__dict__, "start": b.start.isoformat(), "stop": b.stop.isoformat(),
                                       "annotations": sorted(b.annotations)} for b in s.backups],
                          "archives": [a.__dict__ for a in s.archives]}, indent=2))
        return
    where = f" (repo{c.repo})" if c.repo else ""
    out.print(f"stanza [bold]{s.name}[/bold]{where}: status {'ok' if s.ok else s.status_message}, cipher {s.cipher}, "
              f"PostgreSQL {s.pg_version}")
    for a in s.archives:
        out.print(f"WAL {a.id}: {a.min} … {a.max}")
    t = Table("label", "type", "stop (UTC)", "database", "repository", "restore point")
    for b in s.backups:
        t.add_row(b.label, b.type, b.stop.strftime("%Y-%m-%d %H:%M:%S"), _mb(b.size), _mb(b.repo_delta),
                  ops.restore_point_name(b.label) if ops.MANIFEST_KEY in b.annotations else "-")
    out.print(t)


@app.command()
def restore(
    to: Annotated[str, typer.Option("--to", help="latest | immediate | time:<ISO 8601 with zone> | "
                                    "name:<restore point>")],
    target_dir: Annotated[Path, typer.Option("--target-dir", help="thư mục dữ liệu đích / data directory to "
                                             "restore into")],
    set_label: Annotated[str | None, typer.Option("--set", help="bản sao lưu / backup label (default: chosen by "
                                                  "pgBackRest for the target)")] = None,
    delta: Annotated[bool, typer.Option("--delta", help="ghi đè thư mục của một cụm đã dừng / overwrite a stopped "
                                        "cluster's directory")] = False,
    scratch: Annotated[bool, typer.Option(
        "--scratch/--no-scratch", help="bản sao tạm: không lưu trữ WAL / scratch copy with archiving off (default); "
        "--no-scratch for the site's own primary")] = True,
    start_port: Annotated[int | None, typer.Option(
        "--start-port", help="khởi động bản sao trên cổng này và chờ promote / start the copy on this loopback "
        "port, wait for promotion")] = None,
) -> None:
    """Khôi phục vào một thư mục / restore into a data directory (refuses a running cluster's)."""
    c = cfg()
    target = RestoreTarget.parse(to)
    with progress_bar(f"khôi phục / restore {target}") as p:
        res = ops.restore(c, target, target_dir, set_label=set_label, delta=delta, scratch=scratch,
                          start_port=start_port, progress=p)
    out.print(f"khôi phục xong / restore done: {res.label} → {res.target_dir} ({res.note}): {_mb(res.bytes)} in "
              f"{res.restore_seconds:.1f} s ({res.mb_per_s:.1f} MB/s)")
    if res.start_seconds is not None:
        out.print(f"đã promote / promoted: port {res.port}, recovery to {target} and promotion took "
                  f"{res.start_seconds:.1f} s")


@app.command()
def expire(set_label: Annotated[str, typer.Option("--set", help="nhãn bản sao lưu / backup label (kntc-dr info)")],
           ) -> None:
    """Xóa một bản sao lưu hỏng / remove a damaged backup set (and the backups that depend on it)."""
    c = cfg()
    pgbr = PgBackRest(c)
    info = pgbr.info()
    info.backup(set_label)  # an unknown label is refused here, with the labels the repository has
    if info.newest is not None and info.newest.label == set_label:
        raise DrError(f"{set_label} là bản mới nhất / is the newest backup: take a new full backup first "
                      "(kntc-dr backup --type full), then expire this one")
    pgbr.expire(set_label)
    metrics.write(c)
    out.print(f"đã xóa / expired: {set_label}")


@app.command("metrics")
def metrics_cmd(failed_backup: Annotated[str | None, typer.Option(
        "--failed-backup", help="ghi nhận một lần sao lưu bị dừng / record a backup of this type that was killed "
        "or timed out (systemd ExecStopPost)")] = None) -> None:
    """Ghi lại số liệu sao lưu cho Prometheus / rewrite the backup metrics (node exporter textfile)."""
    c = cfg()
    if c.metrics_dir is None:
        raise DrError("metrics_dir chưa cấu hình / is not configured")
    if failed_backup is not None:
        if failed_backup not in ("full", "diff", "incr"):
            raise DrError(f"loại sao lưu không hợp lệ / invalid backup type {failed_backup!r}: full | diff | incr")
        metrics.record_backup(c, failed_backup, False, 0.0)
    out.print(f"đã ghi / written: {metrics.write(c)}")


@app.command("restore-point")
def restore_point(name: Annotated[str, typer.Argument(help="tên / name, e.g. before-import-2026-11")]) -> None:
    """Tạo điểm khôi phục có tên / create a named restore point on the source (pg_create_restore_point)."""
    rp = ops.restore_point(cfg(), name)
    out.print(f"restore point {rp['name']} at {rp['lsn']} ({rp['time']}), WAL archived")


@app.command("verify-restore")
def verify_restore(
    set_label: Annotated[str | None, typer.Option("--set", help="bản sao lưu / backup label (default: newest)")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="giữ bản sao tạm / keep the scratch copy")] = False,
    after: Annotated[str | None, typer.Option(
        "--after", help="loại bản sao lưu vừa xong / the type of the backup that just ended: verify only if the "
        "configuration's verify_after lists it")] = None,
) -> None:
    """Khôi phục thử bản mới nhất và kiểm tra / restore the newest backup into scratch and verify it."""
    from dr.verify import verify_restore as run

    c = cfg()
    if after is not None and after not in c.verify_after:
        out.print(f"bỏ qua: sau bản {after} không kiểm tra / skipped: no verification after a {after} backup "
                  f"(verify_after = {', '.join(c.verify_after)})")
        return
    t0 = time.monotonic()
    try:
        with progress_bar("khôi phục thử / test restore") as p:
            report, j, m = run(c, set_label, keep, p)
    except BaseException:
        metrics.record_verify(c, False, time.monotonic() - t0, {})
        raise
    metrics.record_verify(c, report.passed, time.monotonic() - t0, report.figures)
    print(report.markdown())
    out.print(f"báo cáo / report: {j} {m}")
    if not report.passed:
        raise VerificationFailed("kiểm tra khôi phục KHÔNG ĐẠT / restore verification FAILED: "
                                 + "; ".join(report.reasons))


@drill.command("pitr")
def drill_pitr(
    workdir: Annotated[Path, typer.Option(help="thư mục diễn tập (bị xóa khi bắt đầu) / drill folder (wiped)")] = Path(
        ".data/dr-drill"),
    port: Annotated[int, typer.Option(help="cổng cụm nguồn / source port; the scratch copy uses port+1")] = 55474,
    scale: Annotated[int, typer.Option(min=100, help="số hồ sơ / cases in the source")] = 2000,
    before: Annotated[float, typer.Option(help="giây ghi trước sự cố / seconds of writes before the mistake")] = 3.0,
    after: Annotated[float, typer.Option(help="giây ghi sau sự cố / seconds of writes after the mistake")] = 1.5,
    target_kind: Annotated[str, typer.Option("--target", help="time | name")] = "time",
) -> None:
    """Diễn tập PITR: xóa nhầm, khôi phục đến ngay trước đó / PITR drill: a mistaken DELETE, restore before it."""
    from dr.drills.pitr import run_pitr_drill

    if target_kind not in ("time", "name"):
        raise DrError("--target phải là time hoặc name / must be time or name")
    report, j, m = run_pitr_drill(workdir, port, scale=scale, before_s=before, after_s=after,
                                  target_kind=target_kind, log=lambda s: err.print(f"[dim]{s}[/dim]"))
    print(report.markdown())
    out.print(f"báo cáo / report: {j} {m}")
    if not report.passed:
        raise VerificationFailed("diễn tập PITR KHÔNG ĐẠT / PITR drill FAILED: " + "; ".join(report.reasons))


InventoryOpt = Annotated[Path | None, typer.Option(help="kho máy Ansible / Ansible inventory directory (default: "
                                                   "$KNTC_DR_INVENTORY, then infra/ansible/inventories/lab)")]
ReportDirOpt = Annotated[Path, typer.Option(help="thư mục báo cáo / report folder")]


def _site_drill_done(report: Report, j: Path, m: Path, what: str) -> None:
    print(report.markdown())
    out.print(f"báo cáo / report: {j} {m}")
    if not report.passed:
        raise VerificationFailed(f"{what} KHÔNG ĐẠT / FAILED: " + "; ".join(report.reasons))


@drill.command("site-switchover")
def drill_site_switchover(inventory: InventoryOpt = None, report_dir: ReportDirOpt = Path(".data/dr-reports")) -> None:
    """Chuyển site có kế hoạch DC → DR rồi về / planned site switchover DC → DR and back.

    runbooks/dr-site-switchover.md
    """
    from dr.drills.site_switchover import run_site_switchover

    _site_drill_done(*run_site_switchover(inventory, report_dir, log=lambda s: err.print(f"[dim]{s}[/dim]")),
                     "diễn tập chuyển site / site switchover drill")


@drill.command("site-failover")
def drill_site_failover(inventory: InventoryOpt = None, report_dir: ReportDirOpt = Path(".data/dr-reports")) -> None:
    """Mất site DC: rào, nâng cấp DR, nhập lại / loss of the DC: fence, promote DR, rejoin.

    runbooks/dr-site-failover.md
    """
    from dr.drills.site_failover import run_site_failover

    _site_drill_done(*run_site_failover(inventory, report_dir, log=lambda s: err.print(f"[dim]{s}[/dim]")),
                     "diễn tập mất site / site failover drill")


@drill.command("site-move")
def drill_site_move(inventory: InventoryOpt = None, report_dir: ReportDirOpt = Path(".data/dr-reports")) -> None:
    """Chuyển primary sang site có PostgreSQL mới hơn rồi về / the primary role to the site on a newer
    PostgreSQL by logical replication, and back (the lab of KNTC_LAB_SUITE=dc=bookworm,dr=trixie).

    runbooks/upgrade-postgres.md
    """
    from dr.drills.site_move import run_site_move

    _site_drill_done(*run_site_move(inventory, report_dir, log=lambda s: err.print(f"[dim]{s}[/dim]")),
                     "diễn tập chuyển site sang phiên bản mới / site move drill")


@drill.command("site-move-keep")
def drill_site_move_keep(inventory: InventoryOpt = None,
                         report_dir: ReportDirOpt = Path(".data/dr-reports")) -> None:
    """Chuyển hẳn sang phiên bản mới / the move kept: the DR on the newer PostgreSQL takes the primary
    role, the DC's hosts are made anew on that release as its standby, and the role comes home.
    The lab ends on the newer release at both sites.

    runbooks/upgrade-postgres.md
    """
    from dr.drills.site_move import run_site_move_keep

    _site_drill_done(*run_site_move_keep(inventory, report_dir, log=lambda s: err.print(f"[dim]{s}[/dim]")),
                     "diễn tập chuyển hẳn sang phiên bản mới / site move kept drill")


@drill.command("repo-loss")
def drill_repo_loss(inventory: InventoryOpt = None, report_dir: ReportDirOpt = Path(".data/dr-reports")) -> None:
    """Mất kho repo1, khôi phục từ repo2 / lose repo1 (the DC's repository), restore from repo2.

    runbooks/dr-repo-loss.md
    """
    from dr.drills.repo_loss import run_repo_loss

    _site_drill_done(*run_repo_loss(inventory, report_dir, log=lambda s: err.print(f"[dim]{s}[/dim]")),
                     "diễn tập mất kho / repository loss drill")


@sandbox_app.command("up")
def sandbox_up(
    workdir: Annotated[Path, typer.Option(help="thư mục / folder")] = Path(".data/dr-sandbox"),
    port: Annotated[int, typer.Option(help="cổng nguồn / source port; scratch copies use port+1")] = 55476,
    stanza: Annotated[str, typer.Option()] = "kntc-sandbox",
    scale: Annotated[int, typer.Option(min=100)] = 2000,
    fresh: Annotated[bool, typer.Option("--fresh", help="xóa và tạo lại / delete and recreate")] = False,
    option: Annotated[list[str] | None, typer.Option("--pgbackrest-option", help="extra [global] key=value")] = None,
) -> None:
    """Tạo cụm nguồn cục bộ có lưu trữ WAL / create a local source cluster archiving into an encrypted repository."""
    opts = dict(o.split("=", 1) for o in (option or []) if "=" in o)
    toml = sandbox.up(workdir, port, stanza, scale=scale, pgbackrest_options=opts, fresh=fresh)
    out.print(f"sandbox ready: PostgreSQL port {port}, stanza {stanza}")
    print(f"export KNTC_DR_CONFIG={toml}")


@sandbox_app.command("down")
def sandbox_down(workdir: Annotated[Path, typer.Option()] = Path(".data/dr-sandbox"),
                 purge: Annotated[bool, typer.Option("--purge")] = False) -> None:
    """Dừng (và xóa) sandbox / stop (and delete) the sandbox."""
    sandbox.down(workdir.resolve(), purge)
    out.print("sandbox stopped" + (" and deleted" if purge else ""))


def main() -> None:
    try:
        app(standalone_mode=False)
    except DrError as exc:
        err.print(f"kntc-dr: {one_line(str(exc))}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("kntc-dr: đã hủy / aborted", markup=False)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and anything unexpected: one line, not a traceback
        if os.environ.get("KNTC_DEBUG"):
            raise
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            # click/typer usage errors (missing or bad option): one line, click's exit code (2).
            err.print(f"kntc-dr: sai tham số / usage: {one_line(exc.format_message())}", markup=False)
            sys.exit(exc.exit_code)
        err.print(f"kntc-dr: {type(exc).__name__}: {one_line(str(exc))}", markup=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
