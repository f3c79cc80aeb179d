"""The service's public surface: health, OpenAPI, docs without any CDN, public units."""

from __future__ import annotations

import re
import time

import httpx

from tests.conftest import TEST_PASSWORD


def test_healthz_checks_the_database(server):
    r = httpx.get(server + "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "database": "primary"}


def test_openapi_lists_the_case_endpoints(server):
    spec = httpx.get(server + "/openapi.json").json()
    for path in ("/api/cases", "/api/cases/{code}", "/api/cases/{code}/transitions", "/api/lookup",
                 "/api/auth/login", "/api/deadlines/overdue"):
        assert path in spec["paths"]


def test_docs_page_loads_every_asset_from_the_app_itself(server):
    html = httpx.get(server + "/docs").text
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(ref.startswith("/") for ref in refs), refs
    for ref in refs:
        assert httpx.get(server + ref).status_code == 200, ref


def test_units_tree_current_and_legacy(server):
    hanoi = httpx.get(server + "/api/units/T01").json()
    assert hanoi["name"] == "Thành phố Hà Nội" and hanoi["valid_to"] is None
    communes = httpx.get(server + "/api/units", params={"parent": "T01", "limit": 1000}).json()
    assert sum(1 for u in communes if u["kind"] == "commune") == 126
    old_ward = httpx.get(server + "/api/units/LX00001").json()  # Phường Phúc Xá, Quận Ba Đình (before 2025)
    assert old_ward["valid_to"] == "2025-06-30" and old_ward["successor"].startswith("X")
    old_province = httpx.get(server + "/api/units/LT35").json()  # Hà Nam merged into Ninh Bình
    assert old_province["successor"] == "T37"
    assert len(httpx.get(server + "/api/units", params={"parent": "VN", "limit": 1000}).json()) == 34 + 6


def test_every_legacy_unit_maps_to_a_current_unit(owner_conn):
    counts = owner_conn.execute(
        "SELECT count(*) FILTER (WHERE u.valid_to IS NULL AND u.kind = 'commune') AS communes, "
        "count(*) FILTER (WHERE u.valid_to IS NULL AND u.kind = 'province') AS provinces, "
        "count(*) FILTER (WHERE u.valid_to IS NOT NULL AND (s.id IS NULL OR s.valid_to IS NOT NULL)) AS unmapped, "
        "count(*) FILTER (WHERE u.kind = 'commune' AND u.valid_to IS NOT NULL AND s.kind <> 'commune') AS coarse "
        "FROM kntc.unit u LEFT JOIN kntc.unit s ON s.id = u.successor_id").fetchone()
    assert counts == {"communes": 3321, "provinces": 34, "unmapped": 0, "coarse": 0}


def test_requests_survive_the_database_closing_idle_connections(server, cluster, officer):
    """After a failover HAProxy closes every session; the next request must not fail with 503."""
    off = officer("X00004", ["reception"])
    assert off.get("/api/cases").status_code == 200
    cluster.superuser_psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE usename IN ('kntc_app', 'kntc_auth')")
    time.sleep(1.5)  # the connections must have been idle for the pool to check them
    for _ in range(6):  # more requests than a worker holds connections
        assert httpx.get(server + "/healthz").status_code == 200
        assert off.get("/api/cases").status_code == 200
    # The login role's pool sits idle most of all: its first login after the cut must work too.
    for _ in range(3):
        r = httpx.post(server + "/api/auth/login", json={"username": off.username, "password": TEST_PASSWORD})
        assert r.status_code == 200, r.text


def _cut_sessions_right_after_use(cluster, off) -> None:
    """Every pooled connection of both workers used within the last second, then every session of
    the case service's roles ended, as HAProxy ends them when a leader changes: the next request
    takes a connection too fresh for the pool to check (core_app/db.py, IDLE_CHECK_SECONDS)."""
    for _ in range(24):
        assert off.get("/api/cases?limit=1").status_code == 200
    cluster.superuser_psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE usename IN ('kntc_app', 'kntc_auth')")


def test_a_read_caught_by_a_leader_change_is_answered_and_a_write_is_not_replayed(server, cluster, officer):
    """A switchover ends the sessions under requests already on their way: an officer's read is
    answered from a second attempt, not with 503; a write is never sent twice (it may have
    committed), so it says the database did not answer and the officer decides."""
    off = officer("X00004", ["reception"])
    for _ in range(3):
        _cut_sessions_right_after_use(cluster, off)
        r = off.get("/api/cases?limit=1")
        assert r.status_code == 200, r.text
    _cut_sessions_right_after_use(cluster, off)
    r = off.client.post("/api/cases/X00004-2026-999997/transitions", json={"action": "submit", "version": 1})
    assert r.status_code == 503 and r.json()["error"] == "database_unavailable", r.text
    # and the next one, on connections the pool now checks, is answered as usual
    time.sleep(1.5)
    r = off.client.post("/api/cases/X00004-2026-999997/transitions", json={"action": "submit", "version": 1})
    assert r.status_code == 404, r.text
