"""The primary role moved to a site on a newer PostgreSQL by logical replication: the steps of
`kntc-dr upgrade` (runbooks/upgrade-postgres.md) with both clusters named from the inventory.

A site on a newer major version cannot follow the primary site physically; it runs a cluster of its
own, which `prepare` fills. The steps run on the new site's backup host: it has the new version's
programs (the schema is copied by the newer `pg_dump`), it reaches its own site's database hosts
and, by the firewall's rule for the other site's backups, the old site's. Each cluster is found by
libpq among its site's database hosts (the writable one); each subscriber reaches the other cluster
through that site's balancers' replication port, the path the standby site already uses, with
the certificate name every PostgreSQL server of the site carries.

The superuser's password goes to the backup host in a file that only root reads, in a directory
made for the one step and removed after it; it is never on a command line.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from dr.errors import ConfigError
from dr.lab import Host, Inventory, Lab
from dr.sites.state import REPLICATION_PORT

DATABASE = "kntc"
SUPERUSER = "postgres"
CA_BUNDLE = "/etc/kntc/tls/postgres-ca-bundle.crt"
KNTC_DR = "/opt/kntc/current/bin/kntc-dr"
# The newest PostgreSQL the backup host has: the new site's own version.
PG_BIN = "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
# kntc-dr upgrade's steps, and the options each takes from here.
STEPS = ("check", "prepare", "wait", "status", "cutover", "rollback", "abandon", "finish", "reset")


@dataclass(frozen=True)
class Move:
    """The old and the new site, and where the steps run."""

    old: str
    new: str
    runner: Host
    env: dict[str, str]


def _direct(inv: Inventory, site: str, passfile: str) -> str:
    hosts = [h.address for h in inv.db(site)]
    return (f"host={','.join(hosts)} port={','.join(['5432'] * len(hosts))} dbname={DATABASE} user={SUPERUSER} "
            f"passfile={passfile} sslmode=verify-full sslrootcert={CA_BUNDLE} target_session_attrs=read-write "
            "connect_timeout=5")


def _through_balancers(inv: Inventory, site: str) -> str:
    """The site's primary as the other site's database hosts reach it: host= is the name on its
    certificate, hostaddr= each balancer (libpq tries them in turn)."""
    balancers = [b.address for b in inv.balancers(site)]
    if not balancers:
        raise ConfigError(f"{site} không có máy cân bằng tải / has no balancer in the inventory")
    name = str(inv.vars.get("kntc_postgres_service_name", "postgres.{site}.kntc.internal")).replace(
        "{{ kntc_site }}", site).replace("{site}", site)
    return (f"host={','.join([name] * len(balancers))} hostaddr={','.join(balancers)} "
            f"port={','.join([str(REPLICATION_PORT)] * len(balancers))} dbname={DATABASE} "
            f"sslmode=verify-full sslrootcert={CA_BUNDLE}")


def runner_host(inv: Inventory, old: str, new: str) -> Host:
    """The new site's backup host, where the steps run; two different sites of the inventory."""
    if old == new or old not in inv.sites or new not in inv.sites:
        raise ConfigError(f"hai site khác nhau / give two different sites of {list(inv.sites)}, not {old} → {new}")
    runners = inv.backup(new)
    if not runners:
        raise ConfigError(f"{new} không có máy sao lưu / has no backup host to run the steps on")
    return runners[0]


def plan(inv: Inventory, old: str, new: str, passfile: str) -> Move:
    return Move(old, new, runner_host(inv, old, new), {
        "KNTC_UPGRADE_SOURCE": _direct(inv, old, passfile),
        "KNTC_UPGRADE_TARGET": _direct(inv, new, passfile),
        "KNTC_UPGRADE_SOURCE_FROM_TARGET": _through_balancers(inv, old),
        "KNTC_UPGRADE_TARGET_FROM_SOURCE": _through_balancers(inv, new),
    })


def command(move: Move, step: str, timeout: float) -> str:
    """The shell command that runs one step on the backup host."""
    if step not in STEPS:
        raise ConfigError(f"bước không hợp lệ / unknown step {step!r}: {' | '.join(STEPS)}")
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(move.env.items()))
    args = {"wait": f"status --wait --timeout {int(timeout)}",
            "prepare": f"prepare --pg-bin {PG_BIN}",
            "cutover": f"cutover --timeout {int(timeout)}",
            "rollback": f"rollback --timeout {int(timeout)}"}.get(step, step)
    return f"cd /tmp && export {exports} && {KNTC_DR} upgrade {args}"


def _pgpass_line(password: str) -> str:
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:{SUPERUSER}:{escaped}\n"


def run(lab: Lab, inv: Inventory, old: str, new: str, step: str, timeout: float) -> tuple[int, str, str]:
    """Run one step on the new site's backup host; (exit code, its JSON line, its messages)."""
    runner = runner_host(inv, old, new)
    folder = lab.out(runner, "umask 077 && mktemp -d /run/kntc-move.XXXXXX")
    try:
        lab.put_text(runner, f"{folder}/pgpass", _pgpass_line(inv.secret("pg_superuser")))
        # libpq ignores a password file that others could read, whatever its folder
        lab.run(runner, f"chmod 600 {shlex.quote(folder)}/pgpass")
        move = plan(inv, old, new, f"{folder}/pgpass")
        return lab.run(runner, command(move, step, timeout), check=False, timeout=timeout + 120)
    finally:
        lab.run(runner, f"rm -rf {shlex.quote(folder)}", check=False)
