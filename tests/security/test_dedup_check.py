"""Attacks through the duplicate check (POST /api/dedup/check): learning about a case one may not
read, finding a protected denouncer, and probing without end.

Threat rows (runbooks/security.md): T1, T2, T3.
"""

from __future__ import annotations

import secrets
import time

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.conftest import petition_body


@pytest.fixture(scope="module")
def communes(owner_conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(commune, province) pairs in random order: each test takes its own, so that no other
    test's cases live in the neighbourhood of its addresses."""
    rows = owner_conn.execute(
        "SELECT c.code, p.code AS province FROM kntc.unit c JOIN kntc.unit p ON p.id = c.parent_id "
        "WHERE c.code ~ '^X[0-9]+$' AND c.valid_to IS NULL AND p.kind = 'province' ORDER BY random() LIMIT 60"
    ).fetchall()
    return [(r["code"], r["province"]) for r in rows]


def id_number() -> str:
    return "08" + "".join(secrets.choice("0123456789") for _ in range(10))


def record(officer, unit: str, party: dict, subject: str, **over) -> str:
    body = petition_body(subject=subject, parties=[{"address": "Thôn Bắc", "address_unit": unit, **party}], **over)
    r = officer.post("/api/cases", json=body)
    assert r.status_code == 201, r.text
    return r.json()["code"]


def test_officer_of_another_unit_cannot_learn_a_secret_case_through_the_duplicate_check(officer, communes, owner_conn):
    (unit_a, prov_a), (unit_b, _) = communes[0], next(c for c in communes[1:] if c[1] != communes[0][1])
    holder = officer(unit_a, ["reception"], 2)
    idn, name = id_number(), "Quách Thị Bưởi"
    subject = "Tố cáo chủ tịch xã nhận hối lộ trong giao đất"
    code = record(holder, unit_a, {"role": "complainant", "full_name": name, "id_number": idn}, subject,
                  classification=2, respondent="Chủ tịch UBND xã")
    unit_name = owner_conn.execute("SELECT name FROM kntc.unit WHERE code = %s", (unit_a,)).fetchone()["name"]

    # An officer of another province, fully cleared; and one of the same province who may see the
    # area but not the secret. Both type the complainant's ID number, name, address and subject.
    outsider = officer(unit_b, ["reception"], 2)
    uncleared = officer(prov_a, ["handling"], 0)
    for asker in (outsider, uncleared):
        r = asker.post("/api/dedup/check", json={
            "parties": [{"full_name": name, "id_number": idn, "address_unit": unit_a}], "subject": subject,
            "respondent": "Chủ tịch UBND xã"})
        assert r.status_code == 200, r.text
        for leak in (code, unit_a, unit_name, "hối lộ", "id_number", "score", "reasons"):
            assert leak not in r.text, leak
        answer = r.json()
        assert [set(c) for c in answer["candidates"]] == [
            {"in_scope", "held_elsewhere", "inquiry_handle", "message", "message_en"}]
        assert "held elsewhere" in answer["candidates"][0]["message_en"]

    # The check is on record, with what was hidden kept apart from what was shown.
    row = owner_conn.execute(
        "SELECT c.candidates, l.case_ids FROM kntc.dedup_check c JOIN kntc.dedup_lead l ON l.check_id = c.id "
        "JOIN kntc.account a ON a.id = c.account_id WHERE a.username = %s", (outsider.username,)).fetchone()
    assert row["candidates"] == [{"held_elsewhere": True}] and len(row["case_ids"]) == 1

    # The way to ask: the head of the holding unit is told who asks and why; the asker, only "sent".
    handle = answer["candidates"][0]["inquiry_handle"]
    r = uncleared.post("/api/dedup/inquiries", json={"inquiry_handle": handle, "reason": "Công dân gửi đơn lần hai"})
    assert r.status_code == 202 and unit_a not in r.text and code not in r.text
    r = outsider.post("/api/dedup/inquiries", json={"inquiry_handle": handle, "reason": "Công dân gửi đơn lần hai"})
    assert r.status_code == 404, "a handle is good only for the officer whose check gave it"
    # The officer records that the matter is held elsewhere without ever learning where.
    r = uncleared.post("/api/dedup/decisions", json={"check_id": answer["check_id"], "decision": "elsewhere",
                                                     "inquiry_handle": handle})
    assert r.status_code == 201 and unit_a not in r.text, r.text
    head = officer(unit_a, ["head"], 2)
    notes = head.get("/api/dedup/inquiries").json()["data"]
    assert [(n["asker_unit_code"], n["reason"], n["case_codes"]) for n in notes] == [
        (prov_a, "Công dân gửi đơn lần hai", [code])]
    assert officer(unit_b, ["head"], 2).get("/api/dedup/inquiries").json()["data"] == []


def test_denounced_official_cannot_find_the_protected_denouncer_through_the_duplicate_check(
        officer, communes, server, pg_env):
    unit, _ = communes[2]
    clerk = officer(unit, ["reception"], 1)
    idn, name = id_number(), "Lò Văn Chiến"
    subject = "Tố cáo phó chủ tịch xã lập khống hồ sơ hỗ trợ"
    record(clerk, unit, {"role": "denouncer", "full_name": name, "id_number": idn}, subject, kind="denunciation",
           denouncer_confidential=True, respondent="Phó chủ tịch UBND xã")
    probe = {"parties": [{"full_name": name, "id_number": idn, "address_unit": unit}], "subject": subject,
             "respondent": "Phó chủ tịch UBND xã"}

    # The denounced official works in the same unit, may read the case, but does not handle it.
    official = officer(unit, ["handling"], 1)
    r = official.post("/api/dedup/check", json=probe)
    assert r.status_code == 200, r.text
    assert r.json()["candidates"] == [] and r.json()["held_elsewhere"] is False
    assert idn not in r.text and "lập khống" not in r.text

    # Nor straight from the database as the application role, in the official's own session.
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row) as conn:
        conn.execute("SELECT set_config('kntc.session_token', %s, false)", (official.token,))
        rows = conn.execute("SELECT * FROM kntc.dedup_candidates('{}', %s, %s, "
                            "ARRAY(SELECT id FROM kntc.unit WHERE code = %s), %s, NULL, 10)",
                            ([idn], [name], unit, subject)).fetchall()
        assert [r for r in rows if r["readable"] is not None] == []
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM kntc.dedup_match(%s, NULL, NULL, NULL, NULL)", ([idn],))

    # Whoever handles it (the officer who recorded it) still finds the resent denunciation.
    r = clerk.post("/api/dedup/check", json=probe)
    assert [c["reasons"][0]["code"] for c in r.json()["candidates"]] == ["id_number"]


def test_probing_the_duplicate_check_in_a_loop_is_stopped(officer, communes):
    unit, _ = communes[3]
    prober = officer(unit, ["reception"])
    statuses = []
    started = time.time()
    for _ in range(25):
        r = prober.post("/api/dedup/check", json={"parties": [{"id_number": id_number()}]})
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    # The budget is a sliding estimate over two fixed minutes (kntc.throttle_hit, rounded down): a
    # loop that crosses a minute's boundary may get one check more before it is stopped.
    crossed = int(started // 60) != int(time.time() // 60)
    assert statuses[-1] == 429 and len(statuses) <= (22 if crossed else 21), statuses
    assert r.json()["message"].startswith("Kiểm tra trùng quá nhiều") and "too many" in r.json()["message_en"]
    assert int(r.headers["retry-after"]) >= 1
    # The budget is the prober's own: a colleague still checks.
    r = officer(unit, ["reception"]).post("/api/dedup/check", json={"parties": [{"id_number": id_number()}]})
    assert r.status_code == 200
