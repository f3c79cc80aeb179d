"""The change feed: one order, nothing passed over when transactions commit out of order, and a
consumer that dies mid-page and resumes from its saved cursor misses nothing and sees nothing twice.

Threat rows: T70.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

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
