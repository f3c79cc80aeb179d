"""Import a roster with `kntc accounts import`, timed, and report what it cost.

Where the owner's DSN is: on the lab's migrate host (`--lab`: the roster goes there over SSH, the
command runs with /etc/kntc/admin.env as the release playbook runs `kntc migrate`, the initial
passwords come back and are removed from the host), or here (KNTC_ADMIN_DATABASE_URL, or the
local cluster of `make app` / `make load`, migrated and seeded first). The command is measured
by loadtests/timed.py (wall, CPU, peak memory, as `/usr/bin/time -v`), and the report goes to
loadtests/reports/accounts-import.{json,md}. The initial passwords of every import are kept in
one credentials file (mode 0600) for the load suite's first logins.

    python -m loadtests.accounts_import loadtests/reports/roster/national-162318.csv --lab
    python -m loadtests.accounts_import small.csv --credentials creds.csv   # KNTC_ADMIN_DATABASE_URL set
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests.stack import BIN, REPORTS, ROOT, StackError, local_env, prepare_database
from loadtests.timed import MARK

TIMED = Path(__file__).resolve().parent / "timed.py"
CREDENTIALS_HEADER = ("username", "full_name", "unit_code", "initial_password")
REASON = "Danh sách cán bộ toàn quốc cho kiểm thử tải / national roster for the load test"
COUNTS = re.compile(r"created\s+([\d,]+),\s*unchanged\s+([\d,]+)")
IMPORT_SECONDS = re.compile(r"import_seconds=([\d.]+)")


@dataclass
class Outcome:
    """What one import did and cost."""

    where: str
    roster: str
    roster_sha256: str
    rows: int
    created: int
    unchanged: int
    exit_code: int
    wall_seconds: float
    import_seconds: float | None
    cpu_seconds: float
    user_seconds: float
    system_seconds: float
    peak_rss_mb: float
    accounts_per_s: float | None = None
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    tail: list[str] = field(default_factory=list)


def parse(output: str) -> dict[str, Any]:
    """The importer's counts and the timing wrapper's figures, from the combined output."""
    figures: dict[str, Any] = {}
    for line in output.splitlines():
        if line.startswith(MARK):
            figures = json.loads(line[len(MARK):])
    counts = COUNTS.findall(output)
    seconds = IMPORT_SECONDS.findall(output)
    if counts:
        figures["created"] = int(counts[-1][0].replace(",", ""))
        figures["unchanged"] = int(counts[-1][1].replace(",", ""))
    figures["import_seconds"] = float(seconds[-1]) if seconds else None
    return figures


def roster_rows(path: Path) -> int:
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True)
        try:
            return max(0, sum(1 for r in book.worksheets[0].iter_rows(values_only=True) if any(r)) - 1)
        finally:
            book.close()
    with path.open(encoding="utf-8-sig") as f:
        return max(0, sum(1 for r in csv.reader(f) if any(r)) - 1)


def outcome(where: str, roster: Path, output: str) -> Outcome:
    f = parse(output)
    if "wall_seconds" not in f:
        raise StackError(f"the import gave no timing (did it start?): {output.strip()[-300:]}")
    created = int(f.get("created", 0))
    seconds = f["import_seconds"] or f["wall_seconds"]
    return Outcome(
        where=where, roster=str(roster), roster_sha256=hashlib.sha256(roster.read_bytes()).hexdigest(),
        rows=roster_rows(roster), created=created, unchanged=int(f.get("unchanged", 0)), exit_code=f["exit_code"],
        wall_seconds=f["wall_seconds"], import_seconds=f["import_seconds"], cpu_seconds=f["cpu_seconds"],
        user_seconds=f["user_seconds"], system_seconds=f["system_seconds"], peak_rss_mb=f["peak_rss_mb"],
        accounts_per_s=round(created / seconds, 1) if created and seconds else None,
        tail=[ln for ln in output.splitlines() if ln.strip() and not ln.startswith(MARK)][-8:])


def import_command(kntc: str, roster: str, credentials: str, reason: str, dry_run: bool = False) -> list[str]:
    cmd = [kntc, "accounts", "import", roster, "--credentials", credentials, "--reason", reason]
    return [*cmd, "--dry-run"] if dry_run else cmd


# -- here -------------------------------------------------------------------------------------------
def run_here(roster: Path, new_credentials: Path, env: dict[str, str], reason: str, dry_run: bool) -> Outcome:
    cmd = [str(BIN / "python"), str(TIMED), "--",
           *import_command(str(BIN / "kntc"), str(roster), str(new_credentials), reason, dry_run)]
    res = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, cwd=ROOT)
    where = "local: " + re.sub(r"//[^@/]*@", "//", env.get("KNTC_ADMIN_DATABASE_URL", "?"))  # no password
    return outcome(where, roster, res.stdout + res.stderr)


# -- on the lab's migrate host ------------------------------------------------------------------------
@dataclass(frozen=True)
class Remote:
    """The migrate host as the inventory describes it (dr/lab.py reads inventories for the drills)."""

    name: str
    user: str
    address: str
    key: str | None
    options: tuple[str, ...]
    become: bool
    kntc: str

    def ssh(self, command: str, root: bool = False) -> list[str]:
        """`command` on the host, as root when asked (through sudo for an admin user, as the drills do)."""
        inner = (f"sudo -n bash -c {shlex.quote(command)}" if root and self.user != "root" and self.become
                 else command)
        return ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", *self.options,
                "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR", *(["-i", self.key] if self.key else []),
                f"{self.user}@{self.address}", inner]

    def scp(self, source: str, target: str) -> list[str]:
        return ["scp", "-q", "-o", "BatchMode=yes", *self.options, "-o", "StrictHostKeyChecking=yes",
                *(["-i", self.key] if self.key else []), source, target]

    def path(self, remote: str) -> str:
        return f"{self.user}@{self.address}:{remote}"


def migrate_host(inventory: Path | None, name: str | None) -> Remote:
    from dr.lab import load_inventory

    try:
        inv = load_inventory(inventory)
    except Exception as exc:  # dr's ConfigError, or YAML's: one line is what the operator needs
        raise StackError(str(exc)) from exc
    # kntc_migrate_host: the first app host of the primary site (group_vars/all.yml).
    apps = [h for h in inv.select(inv.primary_site, "app")]
    host = inv.hosts.get(name) if name else (apps[0] if apps else None)
    if host is None:
        raise StackError(f"no migrate host {name or ''} in {inv.path}: name one with --migrate-host")
    base = str(inv.vars.get("app_base_dir", "/opt/kntc"))
    return Remote(host.name, host.user, host.address, host.key, host.ssh_options, host.become,
                  f"{base}/current/bin/kntc")


def run_on_lab(remote: Remote, roster: Path, new_credentials: Path, reason: str, dry_run: bool) -> Outcome:
    def ssh(command: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(remote.ssh(command), capture_output=True, text=True, **kw)

    made = ssh("umask 077 && mktemp -d -t kntc-roster.XXXXXXXX", timeout=60)
    work = made.stdout.strip()
    if made.returncode != 0 or not work.startswith("/"):
        raise StackError(f"{remote.name}: cannot make a private folder: {made.stderr.strip() or made.stdout.strip()}")
    there = f"{work}/{roster.name}"
    creds = f"{work}/credentials.csv"
    keep = False  # the initial passwords stay on the host only if fetching them failed
    try:
        copy = subprocess.run(remote.scp(str(roster), remote.path(there)), capture_output=True, text=True,
                              timeout=600)
        if copy.returncode != 0:
            raise StackError(f"copying the roster to {remote.name} failed: {copy.stderr.strip()}")
        command = " ".join(shlex.quote(a) for a in import_command(remote.kntc, there, creds, reason, dry_run))
        # admin.env holds the owner's DSN and is root's alone; the credentials go back to the SSH user.
        script = (f"set -a && . /etc/kntc/admin.env && set +a && cd {work} && python3 - -- {command}; "
                  f"rc=$?; [ -f {creds} ] && chown {shlex.quote(remote.user)} {creds}; exit $rc")
        with TIMED.open() as wrapper:
            res = subprocess.run(remote.ssh(script, root=True), stdin=wrapper, capture_output=True, text=True,
                                 timeout=6 * 3600)
        result = outcome(f"lab: {remote.name}", roster, res.stdout + res.stderr)
        if result.created:
            back = subprocess.run(remote.scp(remote.path(creds), str(new_credentials)), capture_output=True,
                                  text=True, timeout=600)
            if back.returncode != 0:
                keep = True
                raise StackError(f"fetching the initial passwords from {remote.name}:{creds} failed: "
                                 f"{back.stderr.strip()} (fetch them by hand, then remove {work})")
        return result
    finally:
        if not keep:
            ssh(f"rm -rf {work}", timeout=120)


# -- the credentials and the report -----------------------------------------------------------------
def merge_credentials(new: Path, into: Path) -> int:
    """Add the accounts of one import to the credentials file (0600); returns the accounts in it."""
    rows: dict[str, list[str]] = {}
    for path in (into, new):
        if path.exists():
            with path.open(encoding="utf-8-sig", newline="") as f:
                for r in csv.DictReader(f):
                    rows[r["username"]] = [r[k] for k in CREDENTIALS_HEADER]
    tmp = into.with_name(into.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(CREDENTIALS_HEADER)
        w.writerows(rows.values())
    tmp.replace(into)
    new.unlink(missing_ok=True)
    return len(rows)


def write_report(result: Outcome, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "accounts-import.json").write_text(json.dumps(asdict(result), indent=1, ensure_ascii=False))
    r = result
    rate = f"{r.accounts_per_s:,.1f}" if r.accounts_per_s else "—"
    lines = [
        "# Nhập danh sách tài khoản / Roster import", "",
        f"`kntc accounts import` of {r.roster} ({r.rows:,} rows, sha256 {r.roster_sha256[:12]}…) on {r.where}, {r.at}.",
        "", "| accounts created | unchanged | seconds (import) | seconds (wall) | accounts/s | CPU seconds "
        "(user + system) | peak RSS | exit code |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r.created:,} | {r.unchanged:,} | {r.import_seconds if r.import_seconds is not None else '—'} | "
        f"{r.wall_seconds:,.1f} | {rate} | {r.cpu_seconds:,.1f} ({r.user_seconds:,.1f} + {r.system_seconds:,.1f}) | "
        f"{r.peak_rss_mb:,.0f} MB | {r.exit_code} |", "",
        "Measured with loadtests/timed.py (the child's rusage, as `/usr/bin/time -v`). The importer's last lines:", "",
        "```", *r.tail, "```", ""]
    out = folder / "accounts-import.md"
    out.write_text("\n".join(lines))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("roster", type=Path, help="the roster file (python -m loadtests.roster)")
    p.add_argument("--credentials", type=Path, help="initial passwords, kept across imports "
                   "(default: <roster's folder>/credentials.csv)")
    p.add_argument("--lab", action="store_true", help="import on the lab's migrate host (over SSH)")
    p.add_argument("--inventory", type=Path, help="Ansible inventory (default: infra/ansible/inventories/lab)")
    p.add_argument("--migrate-host", help="the host holding admin.env (default: the primary site's first app host)")
    p.add_argument("--pg-root", type=Path, default=ROOT / ".data" / "local",
                   help="without --lab and KNTC_ADMIN_DATABASE_URL: this local cluster (migrated and seeded first)")
    p.add_argument("--pg-port", type=int, default=55432)
    p.add_argument("--reason", default=REASON)
    p.add_argument("--dry-run", action="store_true", help="check every row, create nothing")
    p.add_argument("--report-dir", type=Path, default=REPORTS)
    args = p.parse_args(argv)
    if not args.roster.exists():
        print(f"accounts-import: no roster at {args.roster} (python -m loadtests.roster --out ...)", file=sys.stderr)
        return 2
    credentials = args.credentials or args.roster.parent / "credentials.csv"
    fresh = credentials.with_name(f".new-{secrets.token_hex(4)}-{credentials.name}")
    try:
        if args.lab:
            result = run_on_lab(migrate_host(args.inventory, args.migrate_host), args.roster, fresh, args.reason,
                                args.dry_run)
        else:
            env = ({"KNTC_ADMIN_DATABASE_URL": os.environ["KNTC_ADMIN_DATABASE_URL"]}
                   if os.environ.get("KNTC_ADMIN_DATABASE_URL") else local_env(args.pg_root, args.pg_port))
            if "KNTC_DATABASE_URL" in env:
                prepare_database(env)  # the local cluster: schema and units, as `make load` has them
            result = run_here(args.roster, fresh, env, args.reason, args.dry_run)
        kept = merge_credentials(fresh, credentials) if fresh.exists() else None
    except (StackError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"accounts-import: {exc}", file=sys.stderr)
        return 2
    finally:
        fresh.unlink(missing_ok=True)
    report = write_report(result, args.report_dir)
    print("\n".join(result.tail))
    print(f"created {result.created:,}, unchanged {result.unchanged:,} in {result.wall_seconds:,.1f} s "
          f"({result.accounts_per_s or 0:,.1f} accounts/s), CPU {result.cpu_seconds:,.1f} s, "
          f"peak RSS {result.peak_rss_mb:,.0f} MB; report {report}")
    if kept is not None:
        print(f"initial passwords: {credentials} ({kept:,} accounts, mode 0600)")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
