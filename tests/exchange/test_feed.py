"""The change feed: one order, nothing passed over when transactions commit out of order, and a
consumer that dies mid-page and resumes from its saved cursor misses nothing and sees nothing twice.

Threat rows: T70, T89.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from connect_client import Connection
from tests.exchange.conftest import Registered, submission

PURPOSE = "đồng bộ hồ sơ (sync)"


def drain(conn: Connection, cursor: str | None) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    while True:
        page = conn.feed_page(PURPOSE, cursor, 100)
        items += page["items"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return items, cursor


def apart(pg_env: dict[str, str], code: str) -> None:
    """Hand the case to another province, still received by the client's unit (so still its business):
    writes to cases of one unit queue on that unit's audit chain, writes to two units' do not."""
    with psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"]) as conn:
        conn.execute(
            "UPDATE kntc.case_file SET handling_unit_id = (SELECT id FROM kntc.unit WHERE code = 'T79') "
            "WHERE code = %s",
            (code,),
        )


@pytest.fixture
def client(register: Callable[..., Registered]) -> Registered:
    return register("T01-TAND")


def test_a_consumer_killed_mid_page_and_resumed_misses_nothing_and_sees_nothing_twice(
    client: Registered, connect: Callable[..., Connection], tmp_path: Path
) -> None:
    with connect(client) as conn:
        # The unit's feed holds the other tests' cases too: this consumer starts from where it ends now.
        cursor_file = tmp_path / "cursor"
        cursor_file.write_text(drain(conn, None)[1])
        codes = [r["case_code"] for r in conn.submit_batch([submission() for _ in range(7)])["results"]]
        handled: list[str] = []

        class Killed(Exception):
            pass

        def dies_at_the_fourth(item: dict[str, Any]) -> None:
            if len(handled) == 3:
                raise Killed
            handled.append(item["case_code"])

        with pytest.raises(Killed):
            for _ in conn.follow(PURPOSE, cursor_file, dies_at_the_fourth, limit=5, once=True):
                pass
        assert len(handled) == 3
    # A new process: only the saved cursor survives.
    with connect(client) as again:
        for _ in again.follow(PURPOSE, cursor_file, lambda item: handled.append(item["case_code"]), limit=5, once=True):
            pass
    assert handled == codes  # each created case once, in the order they were written


def test_an_event_of_a_transaction_that_commits_later_is_not_passed_over(
    client: Registered, connect: Callable[..., Connection], pg_env: dict[str, str]
) -> None:
    """Two writers: the first takes its transaction id (and later the smaller event id), the second
    commits first. A reader between the two commits must deliver neither the second alone (its cursor
    would move past the first), and after both commits must deliver both, once each."""
    with connect(client) as conn:
        a, b = (conn.submit(submission())["case_code"] for _ in range(2))
        apart(pg_env, b)
        _, cursor = drain(conn, None)
        first = psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"])
        second = psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"])
        try:
            first.execute("SELECT pg_current_xact_id()")  # the older transaction
            second.execute("SELECT pg_current_xact_id()")
            first.execute("UPDATE kntc.case_file SET updated_at = now() WHERE code = %s", (a,))  # smaller event id
            second.execute("UPDATE kntc.case_file SET updated_at = now() WHERE code = %s", (b,))  # larger event id
            second.commit()
            between, cursor_between = drain(conn, cursor)
            assert between == [], "an event was delivered while an older transaction was still running"
            first.commit()
        finally:
            first.close()
            second.close()
        after, _ = drain(conn, cursor_between)
    assert [i["case_code"] for i in after] == [a, b]


def test_an_event_whose_transaction_started_later_but_took_a_smaller_id_is_not_passed_over(
    client: Registered, connect: Callable[..., Connection], pg_env: dict[str, str]
) -> None:
    """The classic trap: a bigserial id is taken before commit. The writer with the smaller event id
    commits last; a reader ordering by id alone would have moved its cursor past it."""
    with connect(client) as conn:
        a, b = (conn.submit(submission())["case_code"] for _ in range(2))
        apart(pg_env, b)
        _, cursor = drain(conn, None)
        late = psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"])
        early = psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"])
        try:
            late.execute("UPDATE kntc.case_file SET updated_at = now() WHERE code = %s", (a,))  # smaller id
            early.execute("UPDATE kntc.case_file SET updated_at = now() WHERE code = %s", (b,))  # larger id
            early.commit()
            between, cursor_between = drain(conn, cursor)
            late.commit()
        finally:
            late.close()
            early.close()
        after, _ = drain(conn, cursor_between)
    delivered = [i["case_code"] for i in between + after]
    assert sorted(delivered) == sorted([a, b]) and len(delivered) == 2


def test_a_cursor_that_the_feed_did_not_give_is_refused(client: Registered, connect: Callable[..., Connection]) -> None:
    with connect(client) as conn:
        for bad in ("not-a-cursor", "djEuMS4y" + "x" * 300, "djEuLTEuMg"):
            r = conn.request("GET", "/api/v1/feed", headers={"Purpose": "test"}, params={"cursor": bad})
            assert r.status_code in (400, 422), r.text
            assert r.headers["content-type"] == "application/problem+json"


def test_a_case_transferred_into_the_unit_reaches_its_feed_from_the_transfer_on(
    client: Registered, register: Callable[..., Registered], connect: Callable[..., Connection], pg_env: dict[str, str]
) -> None:
    """An event belongs to the units of its case when it was written: the case's earlier history stays
    with the unit that held it; the transfer itself, and what follows, is the new unit's."""
    with connect(register("T79-TAND")) as elsewhere:
        code = elsewhere.submit(submission())["case_code"]
    with connect(client) as conn:
        _, cursor = drain(conn, None)
        with psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"]) as owner:
            owner.execute(
                "UPDATE kntc.case_file SET handling_unit_id = (SELECT id FROM kntc.unit WHERE code = %s), "
                "version = version + 1 WHERE code = %s",
                (client.unit, code),
            )
        after, _ = drain(conn, cursor)
        from_start, _ = drain(conn, None)
    assert [(i["case_code"], i["event"]) for i in after] == [(code, "changed")]
    assert [i["event"] for i in from_start if i["case_code"] == code] == ["changed"]


def rows_read(plan: dict[str, Any], table: str) -> int:
    """Rows a plan took from `table`: those it kept and those its filters removed, over every loop."""
    node = plan.get("Plan", plan)
    n = 0
    if node.get("Relation Name") == table:
        kept = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        n += (kept + node.get("Rows Removed by Index Recheck", 0)) * node.get("Actual Loops", 1)
    for child in node.get("Plans", []):
        n += rows_read(child, table)
    return n


def test_a_page_reads_the_clients_own_events_and_not_the_countrys(
    register: Callable[..., Registered],
    connect: Callable[..., Connection],
    xofficer: Callable[..., Any],
    pg_env: dict[str, str],
) -> None:
    """T89: 20,000 events of another province's case, and 150 of a secret case of the client's own
    unit, written after the client's own. The page reads the client's events (as the app runs it,
    under row-level security), neither the country's nor every case of its area; the secret case's
    events take no place in it."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from core_app.exchange import feed

    client = register("T04-TAND")
    with connect(register("T08-TAND")) as other:
        elsewhere = other.submit(submission())["case_code"]
    secret = xofficer("T04-TAND", ["reception"], clearance=2).post(
        "/api/cases",
        json={"kind": "complaint", "subject": "Khiếu nại mật", "content": "Nội dung", "channel": "letter",
              "classification": 2, "parties": [{"role": "complainant", "full_name": "Lý Văn Mật"}]},
    ).json()["code"]
    with connect(client) as conn:
        own = [conn.submit(submission())["case_code"] for _ in range(3)]
        token = conn.token()
    with psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"], autocommit=True) as owner:
        for code, n in ((elsewhere, 20_000), (secret, 150)):
            owner.execute(
                "INSERT INTO kntc.exchange_event (case_id, kind, status, version) "
                "SELECT c.id, 'changed', c.status, c.version FROM kntc.case_file c, generate_series(1, %s) "
                "WHERE c.code = %s",
                (n, code),
            )
        owner.execute("ANALYZE kntc.exchange_event")
        hidden = owner.execute(
            "SELECT count(*) FROM kntc.exchange_event e JOIN kntc.case_file c ON c.id = e.case_id WHERE c.code = %s",
            (secret,),
        ).fetchone()[0]
    with connect(client) as conn:
        page = conn.feed_page("plan test", None, 100)
    assert [i["case_code"] for i in page["items"]] == own and not page["has_more"]

    cert = x509.load_pem_x509_certificate(client.cert.read_bytes())
    thumb = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row) as app:
        app.execute(
            "SELECT set_config('kntc.exchange_token', %s, true), set_config('kntc.exchange_cert', %s, true)",
            (token, thumb),
        )
        me = app.execute("SELECT * FROM kntc.exchange_begin(%s, %s)", (token, thumb)).fetchone()
        assert me and me["state"] == "live"
        params = {"client": me["client_id"], "xid": "0", "id": 0, "unit": me["unit_id"],
                  "account": me["account_id"], "limit": 100}
        plan = app.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + feed.PAGE, params).fetchone()
    assert plan is not None
    read = rows_read(next(iter(plan.values()))[0], "exchange_event")
    # Its 3 events and the secret case's (its unit's, hidden by row-level security): none of the other
    # province's 20,000.
    assert read == 3 + hidden, (read, hidden)


def test_a_bodys_own_case_held_and_received_elsewhere_still_reaches_its_feed(
    client: Registered, connect: Callable[..., Connection], pg_env: dict[str, str]
) -> None:
    """What a body submitted stays its business (while it may read it) when both its units change."""
    with connect(client) as conn:
        code = conn.submit(submission())["case_code"]
        _, cursor = drain(conn, None)
        with psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"]) as owner:
            owner.execute(
                "UPDATE kntc.case_file SET handling_unit_id = u.id, receiving_unit_id = u.id, version = version + 1 "
                "FROM kntc.unit u WHERE u.code = 'X00004' AND kntc.case_file.code = %s",
                (code,),
            )
        after, _ = drain(conn, cursor)
    assert [(i["case_code"], i["event"]) for i in after] == [(code, "changed")]
