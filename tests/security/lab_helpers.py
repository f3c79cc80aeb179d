"""Shared helpers of the lab's adversarial tests (tests/security/test_infra_*.py).

The lab's fixtures (`lab`, `hosts`) live in tests/infra/conftest.py; these modules import them.
"""

from __future__ import annotations

import shlex

from tests.infra.conftest import ADDR, ETCD, STATE, secret

PG_TLS = "/etc/kntc/tls"


def psql_as(host, user: str, password: str, *, port: int = 5000, dbname: str = "kntc", extra: str = "",
            sql: str = "select current_user") -> object:
    """psql on `host` through its own HAProxy (the balancer every app host runs)."""
    dsn = (f"host=127.0.0.1 port={port} dbname={dbname} user={user} sslmode=require "
           f"connect_timeout=5 {extra}").strip()
    return host.run(f"PGPASSWORD={shlex.quote(password)} psql -XAt {shlex.quote(dsn)} -c {shlex.quote(sql)}")


__all__ = ["ADDR", "ETCD", "PG_TLS", "STATE", "psql_as", "secret"]
