"""Submissions: idempotency keys, batches with per-item results, results updated, the duplicate check.

Threat rows: T64, T65.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from connect_client import Connection
from tests.exchange.conftest import Registered, id_number, submission


def counts(owner: psycopg.Connection, client: Registered) -> tuple[int, int]:
    row = owner.execute(
        "SELECT (SELECT count(*) FROM kntc.exchange_case x JOIN kntc.exchange_client c ON c.id = x.client_id "
        "         WHERE c.name = %(n)s) AS mapped, "
        "       (SELECT count(*) FROM kntc.case_file f JOIN kntc.exchange_client c ON c.account_id = f.created_by "
        "         WHERE c.name = %(n)s) AS cases",
        {"n": client.name},
    ).fetchone()
    return row["mapped"], row["cases"]


def post(conn: Connection, path: str, body: Any, key: str | None) -> Any:
    headers = {"Authorization": f"Bearer {conn.token()}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return conn.http.post(path, json=body, headers=headers)


@pytest.fixture
def client(register: Callable[..., Registered]) -> Registered:
    return register("T01-TAND")


def test_the_same_batch_submitted_twice_creates_nothing_the_second_time(
    client: Registered, connect: Callable[..., Connection], owner: psycopg.Connection
) -> None:
    batch = {"items": [submission() for _ in range(3)]}
    key = str(uuid.uuid4())
    with connect(client) as conn:
        first = post(conn, "/api/v1/batches", batch, key)
        assert first.status_code == 200, first.text
        assert first.json()["stored"] == 3
        assert counts(owner, client) == (3, 3)
        again = post(conn, "/api/v1/batches", batch, key)
        assert again.status_code == 200
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.content == first.content
        assert counts(owner, client) == (3, 3)
        # A new key with the same items is no new case either: the external ids are known.
        third = post(conn, "/api/v1/batches", batch, str(uuid.uuid4()))
        assert [r["outcome"] for r in third.json()["results"]] == ["unchanged"] * 3
        assert counts(owner, client) == (3, 3)


def test_the_same_key_with_another_body_is_refused(
    client: Registered, connect: Callable[..., Connection], owner: psycopg.Connection
) -> None:
    key = str(uuid.uuid4())
    with connect(client) as conn:
        assert post(conn, "/api/v1/petitions", submission(), key).status_code == 201
        other = post(conn, "/api/v1/petitions", submission(), key)
        assert other.status_code == 422
        assert other.headers["content-type"] == "application/problem+json"
        assert other.json()["type"] == "urn:kntc:problem:idempotency_key_reused"
        missing = post(conn, "/api/v1/petitions", submission(), None)
        assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["detail"]
    assert counts(owner, client) == (1, 1)


def test_a_concurrent_duplicate_is_refused_while_the_first_is_in_flight(
    client: Registered, connect: Callable[..., Connection], owner: psycopg.Connection, pg_env: dict[str, str]
) -> None:
    """The first request is held at its last step (its log entry waits for a lock the test holds), so it
    is truly in flight when the second one with the same key arrives."""
    key, body = str(uuid.uuid4()), submission()
    answers: dict[str, Any] = {}
    with connect(client) as conn, connect(client) as conn2:
        conn.token(), conn2.token()
        holder = psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"])
        try:
            holder.execute(
                "SELECT 1 FROM kntc.exchange_chain c JOIN kntc.exchange_client x ON x.id = c.client_id "
                "WHERE x.name = %s FOR UPDATE",
                (client.name,),
            )
            first = threading.Thread(
                target=lambda: answers.setdefault("first", post(conn, "/api/v1/petitions", body, key))
            )
            first.start()
            _wait_for_lock_wait(owner, deadline_s=10)
            second = threading.Thread(
                target=lambda: answers.setdefault("second", post(conn2, "/api/v1/petitions", body, key))
            )
            second.start()
            _wait_for_lock_wait(owner, deadline_s=10, waiting=2)
        finally:
            holder.rollback()
            holder.close()
        first.join(30)
        second.join(30)
    assert answers["first"].status_code == 201, answers["first"].text
    assert answers["second"].status_code == 409
    assert answers["second"].json()["type"] == "urn:kntc:problem:idempotency_in_flight"
    assert counts(owner, client) == (1, 1)
    with connect(client) as conn:
        replay = post(conn, "/api/v1/petitions", body, key)
    assert replay.status_code == 201 and replay.content == answers["first"].content


def _wait_for_lock_wait(owner: psycopg.Connection, deadline_s: float, waiting: int = 1) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        # pg_locks, unlike pg_stat_activity, shows every role's waits to anyone.
        n = owner.execute("SELECT count(DISTINCT pid) AS n FROM pg_locks WHERE NOT granted").fetchone()["n"]
        if n >= waiting:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {waiting} request(s) waiting on the exchange log after {deadline_s} s")


def test_a_malformed_item_gets_per_field_errors_while_its_good_neighbours_are_stored(
    client: Registered, connect: Callable[..., Connection], owner: psycopg.Connection
) -> None:
    good1, good2 = submission(), submission()
    bad_id = submission(parties=[{"role": "complainant", "full_name": "Lê Văn Cường", "id_number": "12AB"}])
    bad_unit = submission()
    bad_unit["parties"][0]["address_unit"] = "X99999"  # type: ignore[index]
    bad_date = submission(resolved_on="2026-01-01")  # before received_on
    with connect(client) as conn:
        r = post(conn, "/api/v1/batches", {"items": [good1, bad_id, good2, bad_unit, bad_date]}, str(uuid.uuid4()))
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["status"] for x in res] == [201, 422, 201, 422, 422]
    assert res[1]["problem"]["errors"][0]["pointer"] == "/items/1/parties/0/id_number"
    assert res[3]["problem"]["errors"][0]["pointer"] == "/items/3/parties/0/address_unit"
    assert res[4]["problem"]["errors"][0]["pointer"] == "/items/4"
    assert "resolved_on" in res[4]["problem"]["errors"][0]["detail"]
    assert counts(owner, client) == (2, 2)
    stored = {x["external_id"] for x in res if x["status"] == 201}
    assert stored == {good1["external_id"], good2["external_id"]}
    mapped = {
        r["external_id"]
        for r in owner.execute(
            "SELECT external_id FROM kntc.exchange_case x JOIN kntc.exchange_client c ON c.id = x.client_id "
            "WHERE c.name = %s",
            (client.name,),
        ).fetchall()
    }
    assert mapped == stored


def test_a_single_bad_submission_is_a_problem_with_pointers_and_stores_nothing(
    client: Registered, connect: Callable[..., Connection], owner: psycopg.Connection
) -> None:
    with connect(client) as conn:
        r = post(conn, "/api/v1/petitions", {**submission(), "kind": "rumour", "classification": 2}, str(uuid.uuid4()))
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert {e["pointer"] for e in r.json()["errors"]} == {"/kind"}
        above = post(conn, "/api/v1/petitions", submission(classification=1), str(uuid.uuid4()))
        assert above.status_code == 422 and above.json()["errors"][0]["pointer"] == "/classification"
        broken = conn.http.post(
            "/api/v1/petitions",
            content=b"{not json",
            headers={
                "Authorization": f"Bearer {conn.token()}",
                "Idempotency-Key": "x",
                "Content-Type": "application/json",
            },
        )
        assert broken.status_code == 400
    assert counts(owner, client) == (0, 0)


def test_results_submitted_later_update_the_case(
    client: Registered, connect: Callable[..., Connection], owner: psycopg.Connection
) -> None:
    item = submission()
    with connect(client) as conn:
        created = conn.submit(item)
        assert created["outcome"] == "created" and created["case_status"] == "received"
        resolved = conn.submit(
            {
                **item,
                "status": "resolved",
                "accepted_on": "2026-11-21",
                "resolved_on": "2026-11-28",
                "resolution_summary": "Đã giải quyết xong.",
            }
        )
        assert resolved["outcome"] == "updated" and resolved["case_code"] == created["case_code"]
    row = owner.execute(
        "SELECT status, resolved_on::text, resolution_summary FROM kntc.case_file WHERE code = %s",
        (created["case_code"],),
    ).fetchone()
    assert row == {"status": "resolved", "resolved_on": "2026-11-28", "resolution_summary": "Đã giải quyết xong."}


def test_a_submission_is_checked_for_duplicates_in_the_terms_an_officer_of_the_unit_gets(
    client: Registered, connect: Callable[..., Connection], xofficer: Callable[..., Any]
) -> None:
    """A match the client may read comes back with its code; one it may not (a secret case elsewhere in
    the country) is only "held elsewhere", without unit, code, subject or score."""
    person = id_number()
    visible = xofficer("X00004", ["reception"]).post(
        "/api/cases",
        json={
            "kind": "complaint",
            "subject": "Khiếu nại thu hồi đất ở phường",
            "content": "Nội dung",
            "channel": "in_person",
            "parties": [
                {"role": "complainant", "full_name": "Phạm Văn Dũng", "id_number": person, "address_unit": "X00004"}
            ],
        },
    )
    assert visible.status_code == 201, visible.text
    secret = xofficer("T79", ["reception"], clearance=2).post(
        "/api/cases",
        json={
            "kind": "denunciation",
            "subject": "Tố cáo cán bộ thuế nhận hối lộ",
            "content": "Nội dung mật",
            "channel": "letter",
            "classification": 2,
            "parties": [{"role": "denouncer", "full_name": "Phạm Văn Dũng", "id_number": person}],
        },
    )
    assert secret.status_code == 201, secret.text
    item = submission(parties=[{"role": "complainant", "full_name": "Phạm Văn Dũng", "id_number": person}])
    with connect(client) as conn:
        answer = conn.submit(item)
    dup = answer["duplicates"]
    shown = [c for c in dup["candidates"] if c["in_scope"]]
    hidden = [c for c in dup["candidates"] if not c["in_scope"]]
    assert [c["case_code"] for c in shown] == [visible.json()["code"]]
    assert len(hidden) == 1 and set(hidden[0]) == {
        "in_scope",
        "held_elsewhere",
        "inquiry_handle",
        "message",
        "message_en",
    }
    assert secret.json()["code"] not in str(answer) and "T79" not in str(answer)


def test_a_body_submits_more_petitions_a_minute_than_an_officer_may_check(
    client: Registered, connect: Callable[..., Connection], owner: psycopg.Connection
) -> None:
    # An officer may run 20 duplicate checks a minute; a connected system checks every petition it
    # submits, under its own larger budget (exchange_dedup_*): a batch of 30 is stored whole.
    batch = {"items": [submission() for _ in range(30)]}
    with connect(client) as conn:
        r = post(conn, "/api/v1/batches", batch, str(uuid.uuid4()))
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 30, r.text[:2000]
    assert counts(owner, client) == (30, 30)


def test_a_submission_notifies_the_citizen_who_agreed_as_an_officers_intake_does(
    client: Registered, connect: Callable[..., Connection], owner: psycopg.Connection
) -> None:
    """The outbox is filled by the database from the case's timeline: a connected system's submissions
    and results queue the same notifications as the officers' screens (core_app/notify)."""
    party = {**submission()["parties"][0], "phone": "0912 345 678", "notify_consent": True, "notify_channels": ["sms"]}
    item = submission(parties=[party])
    with connect(client) as conn:
        code = conn.submit(item)["case_code"]
        conn.submit({**item, "status": "accepted", "accepted_on": "2026-11-21"})
        conn.submit({**item, "status": "resolved", "accepted_on": "2026-11-21", "resolved_on": "2026-11-28",
                     "resolution_summary": "Đã giải quyết xong."})
        refused = post(conn, "/api/v1/petitions", {**submission(), "parties": [{**party, "notify_consent": False}]},
                       str(uuid.uuid4()))
        assert refused.status_code == 422 and "notify_channels" in refused.text
    rows = owner.execute(
        "SELECT n.event, n.channel, n.facts FROM kntc.notification n JOIN kntc.case_file c ON c.id = n.case_id "
        "WHERE c.code = %s ORDER BY n.created_at",
        (code,),
    ).fetchall()
    assert [(r["event"], r["channel"]) for r in rows] == [("received", "sms"), ("accepted", "sms"), ("resolved", "sms")]
    assert rows[2]["facts"]["on"] == "2026-11-28"
