"""Case codes are unique nationwide and gapless per unit and year, under concurrency, across
server workers and across independent database connections (as several app nodes would be)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg

from tests.conftest import petition_body


def test_concurrent_intake_through_the_api_gives_unique_codes(officer):
    # Four officers (each records under a duplicate check of their own, within the check's budget).
    recorders = [officer("X00008", ["reception"]) for _ in range(4)]
    year_body = petition_body(received_on="2025-12-30")

    def record(i: int) -> str:
        r = recorders[i % 4].post("/api/cases", json=year_body)
        assert r.status_code == 201, r.text
        return r.json()["code"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(record, range(64)))
    assert len(set(codes)) == 64
    seqs = sorted(int(c.rsplit("-", 1)[1]) for c in codes)
    assert seqs == list(range(seqs[0], seqs[0] + 64))
    assert all(c.startswith("X00008-2025-") for c in codes)


def test_concurrent_code_generation_in_sql_from_many_connections(pg_env, owner_conn):
    unit_id = owner_conn.execute("SELECT id FROM kntc.unit WHERE code = 'X00097'").fetchone()["id"]

    def draw(_: int) -> list[str]:
        with psycopg.connect(pg_env["KNTC_DATABASE_URL"]) as conn:
            return [conn.execute("SELECT kntc.next_case_code(%s, 2024)", (unit_id,)).fetchone()[0]
                    for _ in range(50)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = [c for batch in pool.map(draw, range(8)) for c in batch]
    assert len(codes) == len(set(codes)) == 400
    assert max(codes) == "X00097-2024-000400"
