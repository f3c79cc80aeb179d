"""The exchange log: every message in and out, hash-chained per client, verified offline.

Threat rows: T71.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import psycopg

from connect_client import Connection
from tests.exchange.conftest import Registered, kntc, submission


def test_every_message_in_and_out_is_kept_and_the_log_verifies(
    register: Callable[..., Registered],
    connect: Callable[..., Connection],
    owner: psycopg.Connection,
    xenv: dict[str, str],
) -> None:
    client = register("T01-TAND")
    item = submission()
    with connect(client) as conn:
        conn.submit(item)
        conn.feed_page("audit test", None)
    rows = owner.execute(
        "SELECT l.direction, l.route, l.status, l.body IS NOT NULL AS kept FROM kntc.exchange_log l "
        "JOIN kntc.exchange_client c ON c.id = l.client_id WHERE c.name = %s ORDER BY l.id",
        (client.name,),
    ).fetchall()
    assert [(r["direction"], r["route"], r["status"]) for r in rows] == [
        ("in", "POST /api/v1/oauth/token", None),
        ("out", "POST /api/v1/oauth/token", 200),
        ("in", "POST /api/v1/petitions", None),
        ("out", "POST /api/v1/petitions", 201),
        ("in", "GET /api/v1/feed", None),
        ("out", "GET /api/v1/feed", 200),
    ]
    # The token answer holds a live credential: only its digest is kept.
    assert [r["kept"] for r in rows] == [True, False, True, True, True, True]
    kept = owner.execute(
        "SELECT body FROM kntc.exchange_log l JOIN kntc.exchange_client c ON c.id = l.client_id "
        "WHERE c.name = %s AND l.route = 'POST /api/v1/petitions' AND direction = 'in'",
        (client.name,),
    ).fetchone()["body"]
    assert item["external_id"].encode() in bytes(kept)
    ok = kntc(xenv, "exchange", "verify")
    assert "intact" in ok.stdout
    assert "intact" in kntc(xenv, "exchange", "verify", "--bodies").stdout


def test_a_tampered_message_makes_kntc_exchange_verify_fail(
    register: Callable[..., Registered],
    connect: Callable[..., Connection],
    owner: psycopg.Connection,
    xenv: dict[str, str],
) -> None:
    """The owner turns the append-only trigger off and edits a kept message's status (A7)."""
    client = register("T01-TAND")
    with connect(client) as conn:
        conn.submit(submission())
    cid = owner.execute("SELECT id FROM kntc.exchange_client WHERE name = %s", (client.name,)).fetchone()["id"]
    owner.execute("ALTER TABLE kntc.exchange_log DISABLE TRIGGER exchange_log_protect")
    try:
        owner.execute("UPDATE kntc.exchange_log SET status = 200 WHERE client_id = %s AND status = 201", (cid,))
        res = kntc(xenv, "exchange", "verify", check=False)
        assert res.returncode == 1
        assert f"client {cid} message 4: content does not match its hash" in res.stderr
        owner.execute("UPDATE kntc.exchange_log SET status = 201 WHERE client_id = %s AND id = 4", (cid,))
        owner.execute(
            "UPDATE kntc.exchange_log SET body = convert_to('{}', 'UTF8') WHERE client_id = %s AND id = 3", (cid,)
        )
        res = kntc(xenv, "exchange", "verify", "--bodies", check=False)
        assert res.returncode == 1 and f"client {cid} message 3: the kept message does not match" in res.stderr
        owner.execute("DELETE FROM kntc.exchange_log WHERE client_id = %s AND id = 3", (cid,))
        res = kntc(xenv, "exchange", "verify", check=False)
        assert res.returncode == 1 and "removed" in res.stderr
    finally:
        # Put the trail back as it was, so the rest of the session verifies.
        owner.execute("DELETE FROM kntc.exchange_log WHERE client_id = %s", (cid,))
        owner.execute(
            "UPDATE kntc.exchange_chain SET last_id = 0, last_hash = %s WHERE client_id = %s", (bytes(32), cid)
        )
        owner.execute("ALTER TABLE kntc.exchange_log ENABLE TRIGGER exchange_log_protect")
    assert kntc(xenv, "exchange", "verify").returncode == 0


def test_an_auditor_verifies_an_export_away_from_the_database_and_sees_an_edit_in_it(
    register: Callable[..., Registered],
    connect: Callable[..., Connection],
    xenv: dict[str, str],
    tmp_path: Path,
) -> None:
    client = register("T01-TAND")
    with connect(client) as conn:
        conn.submit(submission())
    export = tmp_path / "exchange-log.jsonl"
    kntc(xenv, "exchange", "export", str(export), "--bodies")
    offline = {k: v for k, v in xenv.items() if "DATABASE_URL" not in k}  # no way to the database at all
    res = kntc(offline, "exchange", "verify", "--file", str(export))
    assert "intact" in res.stdout and "kept messages checked" in res.stdout
    lines = export.read_text().splitlines()
    edited = [json.loads(line) for line in lines]
    mine = next(i for i, r in enumerate(edited) if r.get("route") == "POST /api/v1/petitions" and r["status"] == 201)
    edited[mine]["status"] = 200
    forged = tmp_path / "forged.jsonl"
    forged.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in edited) + "\n")
    res = kntc(offline, "exchange", "verify", "--file", str(forged), check=False)
    assert res.returncode == 1 and "content does not match its hash" in res.stderr
    assert kntc(offline, "exchange", "export", str(export), check=False).returncode == 1  # never overwrites
