"""The DR ahead of the DC's new leader, forced: the DR rewinds and follows again by itself.

The DR's standby cluster streams asynchronously from the DC's leader, so it may hold WAL that the
DC's synchronous standby never received when the leader's host dies: the new DC leader's timeline
then forks off before the DR's replay position. The drill makes that happen on purpose: the DC
leader drops its replicas' packets, commits a few rows with `synchronous_commit = local` (which
only the DR receives), and its host is killed. The DR's standby leader must then rewind onto the
new timeline (pg_rewind through the DC's balancers as `rewinder`) and stream again, with no one
touching it; the DR's replica, which received the same WAL through the standby leader, is
restarted by kntc-follow-guard and rewound by Patroni; the rows only the DR had are gone, and a
row committed on the new DC leader reaches every DR member (runbooks/failover-in-dc.md, "The DR
site may have received WAL…").
"""

from __future__ import annotations

import time

import pytest

from dr.sites.state import lsn_int as lsn

from .conftest import ADDR, DC_DB, DR_DB, FIGURES, dc_healthy, dc_leader, patroni_members, podman, wait_for

pytestmark = pytest.mark.lab

DRILL_TABLE = "kntc_drill_diverge"
NFT = "kntc_drill_diverge"


def psql(host, sql: str) -> str:
    return host.check_output(f"cd /tmp && runuser -u postgres -- psql -XAtq -d postgres -c \"{sql}\"")


def dr_standby_leader(hosts) -> str:
    members = patroni_members(hosts(DR_DB[0]))
    return next(m["Member"] for m in members if m["Role"] == "Standby Leader")


def timeline(host) -> int:
    """The timeline the member is on: a primary's own, a standby's received one.

    A primary's is read from the name of the WAL file it writes, not from its control file, which
    keeps the old timeline until the checkpoint that follows a promotion has finished.
    """
    return int(psql(host, "SELECT CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM "
                          "pg_stat_wal_receiver WHERE status = 'streaming') ELSE ('x' || "
                          "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END") or 0)


def test_the_dr_rewinds_when_it_was_ahead_of_the_new_dc_leader(lab, hosts):
    wait_for(lambda: dc_healthy(hosts), 180, "DC cluster healthy before the drill")
    old = dc_leader(hosts)
    leader = hosts(old)
    dr = hosts(dr_standby_leader(hosts))
    psql(leader, f"CREATE TABLE IF NOT EXISTS {DRILL_TABLE} (run text, n int, PRIMARY KEY (run, n))")
    run = f"diverge-{time.time_ns()}"
    # Let the DR catch up with the table before the cut.
    here = lsn(psql(leader, "SELECT pg_current_wal_lsn()"))
    wait_for(lambda: lsn(psql(dr, "SELECT pg_last_wal_replay_lsn()")) >= here, 60, "the DR replays the DC's WAL")
    replicas = [n for n in DC_DB if n != old]
    cut = ", ".join(ADDR[n] for n in replicas)
    # Both ways: WAL already in flight within TCP's window would still reach them otherwise.
    leader.check_output(f"nft add table inet {NFT} && nft add chain inet {NFT} input "
                        "'{ type filter hook input priority -5; policy accept; }' && "
                        f"nft add chain inet {NFT} output '{{ type filter hook output priority -5; policy accept; }}' && "
                        f"nft add rule inet {NFT} input ip saddr '{{ {cut} }}' tcp dport 5432 drop && "
                        f"nft add rule inet {NFT} output ip daddr '{{ {cut} }}' tcp sport 5432 drop")
    t_kill = None
    try:
        # Committed on the leader alone (never acknowledged to the case service, which commits
        # synchronously): the DR receives them, the DC's replicas do not.
        psql(leader, f"SET synchronous_commit = local; INSERT INTO {DRILL_TABLE} "
                     f"SELECT '{run}', g FROM generate_series(1, 200) g")
        ahead = lsn(psql(leader, "SELECT pg_current_wal_lsn()"))
        # Every DR member, the standby leader's replicas too: each must then leave that WAL behind.
        for name in DR_DB:
            wait_for(lambda n=name: lsn(psql(hosts(n), "SELECT pg_last_wal_replay_lsn()")) >= ahead, 60,
                     f"{name} replays the rows the DC's replicas never received")
        behind = max(lsn(psql(hosts(n), "SELECT pg_last_wal_receive_lsn()")) for n in replicas)
        assert behind < ahead, "the DC's replicas received the rows: the cut did not hold"
        tl_before = timeline(dr)
        t_kill = time.monotonic()
        podman("kill", old)
        new = wait_for(lambda: next((n for n in replicas
                                     if any(m["Member"] == n and m["Role"] == "Leader"
                                            for m in patroni_members(hosts(n)))), None),
                       90, f"a DC replica takes over from {old}")
        # Patroni names the leader as it asks for the promotion, a moment before it is done.
        new_tl = wait_for(lambda: (tl := timeline(hosts(new))) > tl_before and tl, 30,
                          f"{new} writes on a new timeline")
        # The DR rewinds onto the new timeline and streams from the new leader, by itself.
        wait_for(lambda: timeline(dr) == new_tl, 300, f"the DR follows the DC's new timeline {new_tl}", interval=2)
        rewound = time.monotonic() - t_kill
        assert psql(dr, f"SELECT count(*) FROM {DRILL_TABLE} WHERE run = '{run}'") == "0", \
            "the rows only the DR had are still there: it did not rewind"
        # The DR's replicas received the same lost WAL through the standby leader; Patroni does not
        # look at their timeline while they follow the same member, kntc-follow-guard restarts them
        # through it, and its divergence check rewinds them.
        # A rewound standby accepts reads only once it has replayed past the primary's WAL position
        # at the end of the rewind; an idle primary may not flush that far until its next
        # checkpoint. The case service never leaves it idle: a commit every poll stands for it.
        beats = iter(range(1_000_000, 2_000_000))

        def follows(name: str) -> bool:
            psql(hosts(new), f"INSERT INTO {DRILL_TABLE} VALUES ('{run}-beat', {next(beats)})")
            return timeline(hosts(name)) == new_tl

        leader_name = dr_standby_leader(hosts)
        others = [n for n in DR_DB if n != leader_name]
        for name in others:
            wait_for(lambda n=name: follows(n), 300, f"{name} follows the DC's new timeline {new_tl}", interval=2)
        everyone = time.monotonic() - t_kill
        psql(hosts(new), f"INSERT INTO {DRILL_TABLE} VALUES ('{run}', 0)")
        for name in (leader_name, *others):
            wait_for(lambda n=name: psql(hosts(n), f"SELECT count(*) FROM {DRILL_TABLE} WHERE run = '{run}'") == "1",
                     60, f"a row committed on the new DC leader reaches {name}")
            # Only that row: the 200 that the DR alone had received are gone from every member.
            assert psql(hosts(name), f"SELECT count(*) FROM {DRILL_TABLE} WHERE run = '{run}' AND n > 0") == "0", \
                f"{name} still holds the rows only the DR had: it did not rewind"
        log = dr.check_output("journalctl -u patroni --since '-10 min' --no-pager | grep -ci rewind || true")
        guard = " ".join(hosts(n).check_output("journalctl -u kntc-follow-guard --since '-10 min' --no-pager "
                                        "| grep -c 'restarting it through Patroni' || true").strip() for n in others)
        FIGURES.setdefault("DR ahead of the new DC leader: kill to the DR following the new timeline (s)",
                           []).append(rewound)
        FIGURES.setdefault("DR ahead of the new DC leader: kill to every DR member on the new timeline (s)",
                           []).append(everyone)
        print(f"\nDR rewind drill: {old} killed with the DR {ahead - behind} bytes ahead of the DC's replicas; "
              f"{new} leads timeline {new_tl}; the DR's standby leader followed it after {rewound:.1f} s "
              f"({log.strip()} lines of its Patroni log name the rewind), every DR member after {everyone:.1f} s "
              f"(follow-guard restarts: {guard})")
    finally:
        if t_kill is None:
            leader.run(f"nft delete table inet {NFT}")
        else:
            podman("start", old)
        wait_for(lambda: dc_healthy(hosts), 300, f"{old} rejoins the DC cluster")
