"""PostgreSQL data directories and clusters: state, start/stop with deadlines, scratch settings.

Everything runs as the postgres user (dr.proc). Waiting is always "until X, at most N seconds",
and a missed deadline names the cluster, the condition and the log tail.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from dr import proc
from dr.errors import PostgresError, RestoreRefused

PG_BIN = Path(os.environ.get("KNTC_PG_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass(frozen=True)
class PidFile:
    pid: int
    port: int | None
    socket_dir: str | None


def read_pidfile(datadir: Path) -> PidFile | None:
    f = datadir / "postmaster.pid"
    try:
        lines = f.read_text().splitlines()
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise RestoreRefused(f"không đọc được / cannot read {f}: {exc}") from exc
    try:
        return PidFile(int(lines[0]), int(lines[3]) if len(lines) > 3 and lines[3].strip() else None,
                       lines[4].strip() if len(lines) > 4 and lines[4].strip() else None)
    except (ValueError, IndexError):
        return PidFile(-1, None, None)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def controldata(datadir: Path, pg_bin: Path = PG_BIN) -> dict[str, str]:
    res = proc.run([pg_bin / "pg_controldata", "-D", datadir], timeout=30)
    if res.returncode != 0:
        return {}
    out: dict[str, str] = {}
    for line in res.stdout.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


def is_ready(port: int, socket_dir: str | Path, pg_bin: Path = PG_BIN) -> bool:
    res = proc.run([pg_bin / "pg_isready", "-q", "-h", socket_dir, "-p", str(port), "-t", "2"], timeout=10)
    return res.returncode == 0


def check_target_dir(target: Path, delta: bool, pg_bin: Path = PG_BIN) -> str:
    """Refuse to restore over a live cluster. Returns a note for the operator when allowed.

    Refused: a postmaster that is alive or answers on its port, or a stale postmaster.pid in a
    cluster whose control file says it was a primary that never shut down ("in production"):
    that primary may still be running elsewhere (same storage, other host) and must be fenced
    first. A non-empty directory needs --delta (pgBackRest would refuse it anyway).
    """
    if not target.exists() or not any(target.iterdir()):
        return "thư mục trống / empty target directory"
    pidf = read_pidfile(target)
    state = controldata(target, pg_bin).get("Database cluster state", "") if (target / "global").exists() else ""
    if pidf is not None:
        if pid_alive(pidf.pid):
            raise RestoreRefused(f"từ chối khôi phục / refusing to restore: {target} is in use by a running postmaster "
                                 f"(PID {pidf.pid}, port {pidf.port}); stop it first")
        if pidf.port and pidf.socket_dir and is_ready(pidf.port, pidf.socket_dir, pg_bin):
            raise RestoreRefused(f"từ chối khôi phục / refusing to restore: a server answers on port {pidf.port} "
                                 f"for {target}; stop it first")
        if state == "in production":
            raise RestoreRefused(f"từ chối khôi phục / refusing to restore: {target} belongs to a primary that was not "
                                 "shut down (state 'in production', postmaster.pid left); make sure it is fenced, "
                                 "then remove postmaster.pid")
    if not delta:
        raise RestoreRefused(f"từ chối khôi phục / refusing to restore: {target} is not empty; use --delta to "
                             f"overwrite a stopped cluster (state: {state or 'unknown'}) or choose an empty directory")
    return f"ghi đè bằng --delta / overwriting with --delta (state: {state or 'unknown'})"


@dataclass(frozen=True)
class Cluster:
    """A data directory that we start and stop ourselves (sandbox sources and scratch restores)."""

    datadir: Path
    port: int
    socket_dir: Path
    log_file: Path
    pg_bin: Path = PG_BIN

    def conninfo(self, database: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={database} application_name=kntc-dr"

    def is_running(self) -> bool:
        return proc.run([self.pg_bin / "pg_ctl", "status", "-D", self.datadir], timeout=30).returncode == 0

    def start(self, timeout: int = 120) -> None:
        proc.make_dir(self.socket_dir, 0o750)
        res = proc.run([self.pg_bin / "pg_ctl", "start", "-w", "-t", str(timeout), "-D", self.datadir,
                        "-l", self.log_file], timeout=timeout + 30)
        if res.returncode != 0:
            raise PostgresError(f"PostgreSQL ({self.datadir}, port {self.port}) không khởi động / did not start "
                                f"(deadline {timeout} s): {' '.join(res.stderr.split())[-300:]} {self.log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            proc.run([self.pg_bin / "pg_ctl", "stop", "-m", mode, "-w", "-t", "120", "-D", self.datadir],
                     timeout=150, check=True, what="pg_ctl stop")

    def log_tail(self, chars: int = 600) -> str:
        try:
            return " ".join(self.log_file.read_text(errors="replace")[-chars:].split())
        except FileNotFoundError:
            return "(no log)"

    def wait_promoted(self, deadline_s: float) -> float:
        """Wait until recovery reached its target and the cluster accepts writes; return seconds waited."""
        t0 = time.monotonic()
        while True:
            res = proc.run([self.pg_bin / "psql", "-X", "-At", "-h", self.socket_dir, "-p", str(self.port),
                            "-d", "postgres", "-c", "SELECT pg_is_in_recovery()"], timeout=30)
            if res.returncode == 0 and res.stdout.strip() == "f":
                return time.monotonic() - t0
            if not self.is_running():
                raise PostgresError(f"cụm khôi phục dừng / restored cluster on port {self.port} stopped during "
                                    f"recovery: {self.log_tail()}")
            if time.monotonic() - t0 > deadline_s:
                raise PostgresError(f"cụm trên cổng {self.port} chưa promote sau {deadline_s:.0f} s / restored "
                                    f"cluster not promoted after {deadline_s:.0f} s: {self.log_tail()}")
            time.sleep(0.2)


def prepare_scratch(datadir: Path, port: int, socket_dir: Path) -> None:
    """Make a restored data directory start as a private copy on a loopback port.

    The settings go into postgresql.auto.conf (read last, so they win): no TCP listener, our own
    socket, no archiving (the copy must never write into the source's stanza), no synchronous
    standby to wait for (Patroni sets one), small memory, logs to pg_ctl's -l file. Debian and
    Patroni keep postgresql.conf outside or beside PGDATA; when missing we add an empty one so the
    copy starts on any host.
    """
    conf = datadir / "postgresql.conf"
    if not conf.exists():
        conf.write_text("# scratch copy made by kntc-dr\n")
        proc.chown_postgres(conf)
    # Only the local postgres superuser may connect to a scratch copy, whatever the source allowed.
    for name, text in (("kntc-dr-scratch-hba.conf", "local all postgres peer\n"),
                       ("kntc-dr-scratch-ident.conf", "")):
        (datadir / name).write_text(text)
        proc.chown_postgres(datadir / name)
    # Patroni's standby.signal would keep the copy in standby mode forever.
    (datadir / "standby.signal").unlink(missing_ok=True)
    settings = {
        "port": str(port), "listen_addresses": "", "unix_socket_directories": str(socket_dir),
        "archive_mode": "off", "synchronous_standby_names": "", "shared_buffers": "128MB",
        "logging_collector": "off", "ssl": "off", "hba_file": str(datadir / "kntc-dr-scratch-hba.conf"),
        "ident_file": str(datadir / "kntc-dr-scratch-ident.conf"), "cluster_name": "kntc-dr-scratch",
        "primary_conninfo": "",
    }
    auto = datadir / "postgresql.auto.conf"
    with auto.open("a") as f:
        f.write("\n# scratch copy settings written by kntc-dr (dr/pg.py prepare_scratch)\n")
        f.writelines(f"{k} = '{v}'\n" for k, v in settings.items())
    proc.chown_postgres(auto)


def du_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total
