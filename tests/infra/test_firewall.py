"""Each tier's ports are open only to the hosts that need them (nftables on every host).

Threat rows (runbooks/security.md): T91, T101, T102, T105, T106.
"""

from __future__ import annotations

import pytest

from .conftest import ADDR

pytestmark = [pytest.mark.lab, pytest.mark.readonly]

# (from, to, port, open?) - open means a TCP connection succeeds, closed that it is refused.
PATHS = [
    ("dc-db2", "dc-etcd1", 2379, True),     # Patroni -> etcd
    ("dc-etcd2", "dc-etcd1", 2380, True),   # etcd peers
    ("dc-db2", "dc-etcd1", 2380, False),    # a database host is a client, never a peer
    ("dc-db2", "dc-db1", 2379, False),      # the DC's database hosts run no etcd
    ("dc-app1", "dc-etcd1", 2379, False),   # app nodes never talk to etcd
    ("dc-app1", "dc-etcd1", 2380, False),
    ("dc-backup1", "dc-etcd1", 2379, False),
    ("dr-db1", "dc-etcd1", 2379, False),    # each site has its own etcd
    ("dc-etcd1", "dc-db1", 5432, False),    # the consensus hosts reach no database
    ("dr-backup1", "dr-db1", 2380, True),   # the DR witness is an etcd peer
    ("dc-app1", "dc-db1", 5432, True),      # HAProxy -> PostgreSQL
    ("dc-app1", "dc-db1", 8008, True),      # HAProxy health checks -> Patroni
    ("dc-backup1", "dc-db1", 5432, True),   # backups
    ("dc-backup1", "dc-db1", 8008, False),
    ("dr-app1", "dc-db1", 5432, False),     # no direct cross-site PostgreSQL
    ("dr-db1", "dc-db1", 5432, False),
    ("dr-db1", "dc-app1", 5002, True),      # the standby cluster replicates through DC HAProxy
    ("dr-db1", "dc-app1", 5000, False),     # on its replication port, not the app's
    ("dr-app1", "dc-app1", 5002, False),
    ("dr-app1", "dc-app1", 5000, False),
    ("dc-db1", "dc-app1", 5001, False),
    ("dc-db1", "dc-backup1", 8432, True),   # pgBackRest TLS server on the repository host
    ("dc-app1", "dc-backup1", 8432, False),
    ("dr-db1", "dc-backup1", 8432, True),   # each cluster archives into both sites' repositories
    ("dc-db1", "dc-app1", 443, True),       # HTTPS is public
    ("dr-db1", "dr-app1", 443, True),
    ("dc-db1", "dc-app1", 4443, True),      # the site balancer's HTTPS entry is public too
    ("dr-db1", "dr-app1", 4443, True),
    ("dc-db1", "dc-app1", 8443, False),     # the exchange API: connected bodies' addresses only
    ("dc-backup1", "dr-app1", 8443, False),
    # Monitoring: each site's monitoring host scrapes every host of both sites, no one else does.
    ("dc-mon1", "dc-db1", 9100, True),
    ("dr-mon1", "dc-db1", 9100, True),
    ("dc-mon1", "dr-app1", 9100, True),
    ("dc-app1", "dc-db1", 9100, False),
    ("dc-db2", "dc-backup1", 9100, False),
    ("dc-mon1", "dc-db1", 9187, True),
    ("dc-db2", "dc-db1", 9187, False),
    ("dr-mon1", "dc-db1", 8008, True),
    ("dr-mon1", "dc-mon1", 9093, True),      # both Prometheus alert both Alertmanagers
    ("dc-app1", "dc-mon1", 9093, False),
    ("dc-db1", "dc-mon1", 9090, False),
    ("dr-mon1", "dc-mon1", 9094, True),      # the Alertmanagers' cluster
    ("dc-app1", "dc-mon1", 9094, False),
    ("dc-mon1", "dc-etcd2", 2381, True),     # etcd's metrics listener, never its client port
    ("dc-mon1", "dc-etcd2", 2379, False),
    ("dc-app1", "dc-etcd2", 2381, False),
    ("dr-mon1", "dc-app2", 8405, True),      # HAProxy's exporter
    ("dc-db1", "dc-app2", 8405, False),
    ("dc-mon1", "dr-app1", 9180, True),      # the case service's and nginx's metrics
    ("dc-db1", "dc-app1", 9180, False),
    ("dc-db1", "dc-mon1", 19532, True),      # journals go to the site's monitoring host
    ("dr-app1", "dc-mon1", 19532, False),    # never to the other site's
    ("dr-backup1", "dc-db1", 5432, True),    # the other site's backup host takes its manifest
    ("dr-app1", "dc-db1", 5432, False),
]


@pytest.mark.parametrize(("src", "dst", "port", "is_open"), PATHS,
                         ids=[f"{s}->{d}:{p}-{'open' if o else 'closed'}" for s, d, p, o in PATHS])
def test_port_reachable_only_as_designed(hosts, src, dst, port, is_open):
    r = hosts(src).run(f"nc -z -w 3 {ADDR[dst]} {port}")
    assert (r.rc == 0) == is_open, f"{src} -> {dst}:{port}: rc={r.rc} {r.stderr.strip()}"
