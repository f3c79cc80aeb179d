"""`kntc-dr site …`: the operator's commands for moving the primary role between sites.

Each command is one step of runbooks/dr-site-switchover.md, dr-site-failover.md or
dr-repo-loss.md; each waits for its own outcome with a deadline and prints one line per host or
site that the runbook names as the expected output. The drills run these same commands from the
runbooks (dr/runbook.py), with a writer and the two-primaries monitor around them.

Hosts come from the Ansible inventory (--inventory, $KNTC_DR_INVENTORY, or the lab's).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from dr.errors import DrError
from dr.lab import PATRONICTL, Host, Inventory, Lab, load_inventory
from dr.sites import move, state

app = typer.Typer(help="Vai trò của các site / the sites' roles (runbooks/dr-site-*.md)", no_args_is_help=True)
_state: dict[str, Path | None] = {"inventory": None}


class RemoteExit(DrError):
    """`site exec` exits with the remote command's own exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code


SiteArg = Annotated[str, typer.Argument(help="dc | dr")]
FENCE_TABLE = "kntc_fence"
# Each database host's own PGDATA and PGBIN, as the patroni role wrote them (patroni_postgres_env):
# during a major upgrade the sites run different versions, so nothing here names one.
PG_ENV = ("test -r /etc/kntc/postgres.env || { echo '/etc/kntc/postgres.env is missing: run site.yml "
          "(role patroni) on this host first' >&2; exit 3; }; . /etc/kntc/postgres.env")
PG_CTL = f'{PG_ENV} && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA"'
FENCE_DROPIN = "/etc/systemd/system/patroni.service.d/kntc-fence.conf"


@app.callback()
def _site(inventory: Annotated[Path | None, typer.Option(
        help="kho máy Ansible / Ansible inventory directory (default: $KNTC_DR_INVENTORY, then the lab's)")] = None,
          ) -> None:
    _state["inventory"] = inventory


def _open() -> tuple[Inventory, Lab]:
    inv = load_inventory(_state["inventory"])
    return inv, Lab(inv)


def _check_site(site: str) -> None:
    """Before any host is reached: `site` is one the inventory names."""
    sites = load_inventory(_state["inventory"]).sites
    if site not in sites:
        raise DrError(f"site không hợp lệ / unknown site {site!r}: {' | '.join(sites)}")


def resolve_host(lab: Lab, inv: Inventory, spec: str) -> Host:
    """A host name, or `<site>:leader`, `<site>:replica`, `<site>:backup`."""
    if spec in inv.hosts:
        return inv.hosts[spec]
    site, _, what = spec.partition(":")
    if site not in inv.sites:
        raise DrError(f"không có máy {spec} / no host {spec} (hosts: {', '.join(inv.hosts)}, or <site>:leader|"
                      "replica|backup)")
    if what == "backup":
        return inv.backup(site)[0]
    members = lab.patroni_members(site)
    lead = next((m["Member"] for m in members if m["Role"] in ("Leader", "Standby Leader")), None)
    if what == "leader" and lead:
        return inv.hosts[lead]
    if what == "replica":
        rep = next((m["Member"] for m in members if m["Member"] != lead and m["State"] in state.UP_STATES),
                   None)
        if rep:
            return inv.hosts[rep]
    raise DrError(f"không có máy {spec} / no host {spec} (hosts: {', '.join(inv.hosts)}, or <site>:leader|replica|"
                  "backup)")


# ------------------------------------------------------------------ read-only
@app.command()
def status() -> None:
    """Vai trò của mỗi site và thành viên / each site's role, its members and its case service."""
    inv, lab = _open()
    try:
        for site in inv.sites:
            try:
                members = lab.patroni_members(site)
            except DrError as exc:
                print(f"{site}: unreachable ({exc})")
                continue
            role = state.site_role(lab, site)
            follows = lab.patroni_config(site).get("standby_cluster") if role != "primary" else None
            print(f"{site}: {role}" + (f" (following {follows['host']}:{follows['port']})" if follows else ""))
            for m in members:
                print(f"  {m['Member']:<10} {m['Role']:<15} {m['State']:<10} TL {m.get('TL', '-')}")
            for a in inv.select(site, "app"):
                print(f"  {a.name:<10} app database: {state.app_database(lab, a)}")
    finally:
        lab.close()


@app.command("exec")
def exec_(host: Annotated[str, typer.Argument(help="máy / host, or <site>:leader|replica|backup")],
          command: Annotated[str, typer.Argument(help="lệnh bash / bash command")]) -> None:
    """Chạy một lệnh trên một máy của kho / run a command on an inventory host (prints its output)."""
    inv, lab = _open()
    try:
        h = resolve_host(lab, inv, host)
        rc, out, err = lab.run(h, command, check=False, timeout=3600)
    finally:
        lab.close()
    _relay(rc, out, err, f"{h.name}: lệnh thoát với mã {rc} / the command exited {rc}")


def _relay(rc: int, out: str, err: str, failed: str) -> None:
    """A remote command's output as this command's own, and its exit code."""
    if out:
        print(out)
    if err.strip():
        typer.echo(err.rstrip(), err=True)
    if rc:
        raise RemoteExit(failed, rc)


@app.command("write-test")
def write_test(site: SiteArg) -> None:
    """Thử ghi qua cổng ghi HAProxy của site / try a write through the site's HAProxy rw ports (exit 1 if refused)."""
    _check_site(site)
    inv = load_inventory(_state["inventory"])
    results = [(ep.name, state.try_write(ep)) for ep in state.rw_endpoints(inv, site)]
    for name, ok in results:
        print(f"{name}: {'write accepted' if ok else 'write refused'}")
    if not any(ok for _, ok in results):
        raise DrError(f"{site}: không ghi được / no rw endpoint accepted the write")


# ------------------------------------------------------------------ planned moves
@app.command()
def demote(site: SiteArg, follow: Annotated[str, typer.Option(help="site được theo / the site to follow")],
           timeout: Annotated[float, typer.Option(help="giây / seconds")] = 120) -> None:
    """Biến site thành cụm dự phòng theo site kia / make the site a standby cluster following the other one.

    Patroni demotes a leader that finds `standby_cluster` in its configuration with an immediate
    stop: WAL not yet sent to the other site would be lost to it, and the demoted site would have
    to be rewound. So the site is paused, its primary stopped cleanly (a fast shutdown sends every
    WAL record, up to the shutdown checkpoint, to the connected standbys — the other site's
    included — before it ends), its configuration changed, and Patroni resumed: it starts the old
    primary as the standby leader. Should the change fail, the resumed site starts its primary
    again, as it was."""
    _check_site(site)
    _check_site(follow)
    inv, lab = _open()
    scope = f"kntc-{site}"
    try:
        lead = state.leader(lab, site)
        if not lead or lead["Role"] != "Leader":
            raise DrError(f"{site} không có primary / {site} has no primary leader to demote")
        first = inv.db(site)[0]
        lab.run(first, f"{PATRONICTL} pause {scope} --wait")
        try:
            # The clean stop comes before the configuration change: once Patroni reads standby_cluster,
            # its /primary check answers 503, HAProxy marks the primary down within a second and cuts
            # the other site's replication session, and the shutdown checkpoint would never reach it.
            lab.run(lead["Member"], f"cd /tmp && {PG_CTL} stop -m fast -w -t {int(timeout)}", timeout=timeout + 10)
            lab.edit_config(site, *state.standby_cluster_settings(inv, follow), "synchronous_mode=false")
        finally:
            lab.run(first, f"{PATRONICTL} resume {scope} --wait")
        state.wait_until(lambda: state.site_role(lab, site) == "standby" and not any(
            lab.sql(h, "SELECT pg_is_in_recovery()") == "f" for h in inv.db(site)), timeout,
            f"{site} là cụm dự phòng không có primary / {site} is a standby cluster without a primary")
        print(f"{site}: standby (following {follow})")
    finally:
        lab.close()


@app.command("wait-caught-up")
def wait_caught_up(site: SiteArg, from_: Annotated[str, typer.Option("--from", help="site vừa bị hạ cấp / the "
                                                                     "demoted site")],
                   timeout: Annotated[float, typer.Option(help="giây / seconds")] = 60) -> None:
    """Chờ site phát lại tới WAL cuối của site đã hạ cấp / wait until the site replayed the demoted site's last WAL."""
    _check_site(site)
    _check_site(from_)
    _inv, lab = _open()
    try:
        src = state.leader(lab, from_)
        dst = state.leader(lab, site)
        if not src or not dst:
            raise DrError(f"thiếu leader / no leader in {from_ if not src else site}")
        end = state.final_lsn(lab, src["Member"])
        got = state.wait_until(lambda: (lsn := state.replay_lsn(lab, dst["Member"])) >= end and lsn, timeout,
                           f"{dst['Member']} phát lại tới {end:X} / replays up to {from_}'s last WAL")
        print(f"{site}: caught up ({dst['Member']} replayed {_lsn(got)} >= {src['Member']}'s last WAL {_lsn(end)})")
    finally:
        lab.close()


@app.command()
def promote(site: SiteArg, timeout: Annotated[float, typer.Option(help="giây / seconds")] = 60) -> None:
    """Nâng site thành primary / promote the site's cluster (removes standby_cluster) and wait for writes."""
    _check_site(site)
    inv, lab = _open()
    try:
        other = inv.other(site)
        try:
            primary_elsewhere = state.site_role(lab, other) == "primary"
        except DrError:
            primary_elsewhere = False  # the other site does not answer: the runbook's fence step covers it
        if primary_elsewhere:
            raise DrError(f"{other} vẫn là primary: hạ cấp hoặc rào nó trước / {other} is still primary: demote or "
                          f"fence it first")
        t0 = time.monotonic()
        sync = "true" if site == inv.primary_site else "false"
        lab.edit_config(site, "standby_cluster=null", f"synchronous_mode={sync}")
        eps = state.rw_endpoints(inv, site)
        state.wait_until(lambda: any(state.try_write(ep) for ep in eps), timeout,
                     f"ghi được qua HAProxy của {site} / a write through {site}'s HAProxy succeeds", interval=0.2)
        print(f"{site}: primary (writes accepted through its HAProxy {time.monotonic() - t0:.1f} s after edit-config)")
    finally:
        lab.close()


@app.command("point-app")
def point_app(site: SiteArg, rw: Annotated[bool, typer.Option("--rw/--ro", help="cổng ghi / read-write port "
                                                               "(5000) or read-only (5001)")] = True,
              timeout: Annotated[float, typer.Option(help="giây / seconds")] = 90) -> None:
    """Trỏ dịch vụ hồ sơ của site tới cổng ghi/đọc / point the site's case service at the rw or ro port."""
    _check_site(site)
    inv, lab = _open()
    try:
        state.point_app(lab, inv, site, state.RW_PORT if rw else state.RW_PORT + 1)
        apps = inv.select(site, "app")
        want = "primary" if rw else None

        def answering() -> bool:
            said = [state.app_database(lab, a) for a in apps]
            return all((s == want) if want else s != "down" for s in said)

        state.wait_until(answering, timeout,
                         f"dịch vụ hồ sơ ở {site} trả lời / the case service in {site} answers ({want or 'any'})")
        for a in apps:
            print(f"{a.name}: {state.app_database(lab, a)}")
    finally:
        lab.close()


@app.command("wait-following")
def wait_following(site: SiteArg, from_: Annotated[str, typer.Option("--from", help="site primary / the primary "
                                                                     "site")],
                   timeout: Annotated[float, typer.Option(help="giây / seconds")] = 180) -> None:
    """Chờ standby leader của site nhận WAL / wait until the site's standby leader streams from the primary site."""
    _check_site(site)
    _check_site(from_)
    _inv, lab = _open()
    try:
        def ok() -> str | None:
            m = state.leader(lab, site)
            streaming = m and m["Role"] == "Standby Leader" and state.streaming_from_remote(lab, m["Member"])
            return m["Member"] if streaming else None

        who = state.wait_until(ok, timeout, f"{site} nhận WAL từ {from_} / {site} streams from {from_}", interval=1)
        print(f"{site}: streaming from {from_} ({who})")
    finally:
        lab.close()


# ------------------------------------------------------------------ a move to a newer major version
@app.command("move")
def move_(step: Annotated[str, typer.Argument(help=" | ".join(move.STEPS))],
          from_: Annotated[str, typer.Option("--from", help="site cũ / the site on the old version")],
          to: Annotated[str, typer.Option("--to", help="site mới / the site on the new version")],
          timeout: Annotated[float, typer.Option(help="giây / seconds")] = 600) -> None:
    """Chuyển vai trò primary sang site có phiên bản PostgreSQL mới hơn / move the primary role to the
    site on a newer PostgreSQL by logical replication: one step of `kntc-dr upgrade`, run on that
    site's backup host with both clusters found from the inventory (runbooks/upgrade-postgres.md)."""
    _check_site(from_)
    _check_site(to)
    if step not in move.STEPS:
        raise DrError(f"bước không hợp lệ / unknown step {step!r}: {' | '.join(move.STEPS)}")
    inv, lab = _open()
    try:
        rc, out, err = move.run(lab, inv, from_, to, step, timeout)
    finally:
        lab.close()
    _relay(rc, out, err, f"{step}: kntc-dr upgrade thoát với mã {rc} / exited {rc}")


# ------------------------------------------------------------------ unplanned loss
@app.command("wait-lost")
def wait_lost(site: SiteArg, from_: Annotated[str, typer.Option("--from", help="site bị mất / the lost site")],
              rounds: Annotated[int, typer.Option(help="số lần liên tiếp / consecutive failed rounds")] = 3,
              timeout: Annotated[float, typer.Option(help="giây / seconds")] = 60) -> None:
    """Chờ tới khi site mất liên lạc với site kia / wait until the site's standby leader has lost the other site.

    A cut link drops packets: the WAL receiver still says `streaming` until its timeout (60 s), and
    on a quiet primary nothing arrives for up to 30 s anyway. The sign used is the replication path
    itself: the other site's balancers' replication ports, unreachable from the standby leader in `rounds`
    consecutive rounds (or a WAL receiver that has already given up)."""
    _check_site(site)
    _check_site(from_)
    inv, lab = _open()
    try:
        m = state.leader(lab, site)
        if not m:
            raise DrError(f"{site} không có standby leader / has no standby leader")
        probes = " || ".join(f"timeout 2 bash -c '</dev/tcp/{b.address}/{state.REPLICATION_PORT}' 2>/dev/null"
                             for b in inv.balancers(from_))
        failed = [0]

        def lost() -> bool:
            receiver = lab.sql(m["Member"], "SELECT status FROM pg_stat_wal_receiver")
            reachable = lab.run(m["Member"], probes, check=False)[0] == 0
            failed[0] = 0 if reachable else failed[0] + 1
            return receiver != "streaming" or failed[0] >= rounds

        state.wait_until(lost, timeout, f"{m['Member']} mất liên lạc với {from_} / lost {from_}", interval=1)
        print(f"{site}: not streaming from {from_} ({m['Member']} replayed "
              f"{_lsn(state.replay_lsn(lab, m['Member']))}; {from_}'s replication ports unreachable "
              f"{failed[0]} times in a row)")
    finally:
        lab.close()


@app.command()
def fence(site: SiteArg, timeout: Annotated[float, typer.Option(help="giây / seconds")] = 60) -> None:
    """Rào site: dừng và khóa Patroni, chặn cổng ghi và sao chép / fence the site: stop and mask Patroni,
    drop its rw and replication ports."""
    _check_site(site)
    inv, lab = _open()
    try:
        # the replicas first: a leader stopped while its replicas' Patroni still runs would hand
        # its role to one of them
        try:
            lead = (state.leader(lab, site) or {}).get("Member")
        except DrError:
            lead = None
        for db in sorted(inv.db(site), key=lambda h: h.name == lead):
            # a drop-in that fails every start (survives reboots) until `kntc-dr site rejoin` removes it;
            # then SIGKILL to the unit's processes: a clean stop of a primary waits for every WAL sender,
            # and the one feeding the cut-off DR blocks until wal_sender_timeout (about 60 s)
            lab.run(db, f"install -d {FENCE_DROPIN.rsplit('/', 1)[0]} && printf '%s\\n' '# kntc-dr site fence: this "
                        "site was fenced after a site failover; kntc-dr site rejoin removes this file' '[Service]' "
                        f"'ExecStartPre=/bin/false' > {FENCE_DROPIN} && systemctl daemon-reload && "
                        "systemctl disable patroni && { systemctl kill -s SIGKILL patroni || true; } && "
                        "systemctl stop patroni; systemctl reset-failed patroni 2>/dev/null; "
                        "for i in $(seq 30); do pgrep -u postgres -x postgres >/dev/null || exit 0; sleep 1; done; "
                        f"{PG_CTL} stop -m immediate", timeout=timeout)
        for b in inv.balancers(site):
            lab.run(b, f"nft add table inet {FENCE_TABLE} && nft add chain inet {FENCE_TABLE} input "
                       "'{ type filter hook input priority -5; policy accept; }' && "
                       f"nft flush chain inet {FENCE_TABLE} input && "
                       f"nft add rule inet {FENCE_TABLE} input tcp dport "
                       f"{{ {state.RW_PORT}, {state.REPLICATION_PORT} }} counter drop")
        # A killed leader leaves its key in etcd until the ttl ends: remove it, so that nobody (the
        # promote step's check among them) reads the fenced site as having a running primary.
        _etcd_del(lab, inv, site, "leader")
        state.wait_until(lambda: state.site_role(lab, site) != "primary", timeout,
                     f"{site} không còn leader trong etcd / no leader of {site} left in etcd")
        for db in inv.db(site):
            print(f"{db.name}: patroni {lab.out(db, 'systemctl is-active patroni || true')}, postgres "
                  f"{'running' if lab.run(db, 'pgrep -u postgres -x postgres', check=False)[0] == 0 else 'stopped'}")
        for b in inv.balancers(site):
            print(f"{b.name}: rw port {state.RW_PORT} and replication port {state.REPLICATION_PORT} dropped")
        print(f"{site}: fenced")
    finally:
        lab.close()


def _etcd_del(lab: Lab, inv: Inventory, site: str, key: str) -> None:
    """Delete one of Patroni's keys of the site's cluster from the site's etcd."""
    # From a database host, as Patroni: etcd admits only its own client certificates (the etcd CA),
    # and its members may run on other hosts than the database.
    db = inv.db(site)[0]
    endpoints = ",".join(f"https://{h.address}:2379" for h in inv.etcd(site))
    lab.run(db, f"ETCDCTL_API=3 etcdctl --endpoints={endpoints} --cacert=/etc/kntc/tls/ca.crt "
                "--cert=/etc/kntc/tls/etcd-client.crt --key=/etc/kntc/tls/etcd-client.key "
                f"del /service/kntc-{site}/{key} >/dev/null")


@app.command()
def rejoin(site: SiteArg, follow: Annotated[str, typer.Option(help="site primary mới / the new primary site")],
           timeout: Annotated[float, typer.Option(help="giây / seconds")] = 300) -> None:
    """Đưa site đã rào về làm site dự phòng / the fenced site rejoins as a standby site of the new primary.

    Its data directories diverged from the new primary's timeline: they are moved aside (kept for
    reconciliation of the lost commits), and Patroni bootstraps a standby leader from the new
    primary, the other members clone from it."""
    _check_site(site)
    _check_site(follow)
    inv, lab = _open()
    stamp = state.stamp()
    try:
        dbs = inv.db(site)
        running = [db.name for db in dbs if lab.out(db, "systemctl is-active patroni || true") == "active"]
        if running:
            raise DrError(f"Patroni còn chạy trên / still runs on {', '.join(running)}: fence {site} first")
        lab.edit_config(site, *state.standby_cluster_settings(inv, follow), "synchronous_mode=false")
        for key in ("initialize", "leader", "sync", "failsafe", "status"):
            _etcd_del(lab, inv, site, key)
        for db in dbs:
            aside = f'"$PGDATA.diverged-{stamp}"'
            kept = lab.out(db, f'{PG_ENV} && if test -d "$PGDATA"; then mv -T "$PGDATA" {aside} && echo {aside}; fi')
            if kept:
                print(f"{db.name}: diverged data kept in {kept}")
        for b in inv.balancers(site):
            lab.run(b, f"nft delete table inet {FENCE_TABLE} 2>/dev/null || true")
        unfence = f"rm -f {FENCE_DROPIN} && systemctl daemon-reload && systemctl enable --now patroni"
        lab.run(dbs[0], unfence)
        state.wait_until(lambda: state.site_role(lab, site) == "standby", timeout,
                     f"{site} có standby leader sao từ {follow} / {site} bootstrapped a standby leader from {follow}",
                     interval=2)
        for db in dbs[1:]:
            lab.run(db, unfence)
        state.wait_until(lambda: all(m["State"] in state.UP_STATES for m in lab.patroni_members(site))
                     and len(lab.patroni_members(site)) == len(dbs), timeout,
                     f"mọi thành viên của {site} chạy / every member of {site} runs", interval=2)
        print(f"{site}: standby (rejoined, following {follow})")
    finally:
        lab.close()


def _lsn(n: int) -> str:
    return f"{n >> 32:X}/{n & 0xFFFFFFFF:X}"
