"""Attacks through the officer's daily work: corrections and duplicate decisions used to alter or learn
about a case the officer does not hold, a protected denouncer exposed by a correction, a petition
recorded past the duplicate check as the application role, a due date pushed out without the head's
decision, a deadline rule changed by someone who may not.

Threat rows (runbooks/security.md): T73, T74, T75, T76, T77, T78.
"""

from __future__ import annotations

import secrets
from datetime import date

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.conftest import petition_body

UNIT, NEIGHBOUR, PROVINCE = "X00004", "X00008", "T01"


def _record(o, **over) -> dict:
    r = o.post("/api/cases", json=petition_body(**over))
    assert r.status_code == 201, r.text
    return r.json()


def _as_app(pg_env: dict[str, str], token: str) -> psycopg.Connection:
    conn = psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row)
    conn.execute("SELECT set_config('kntc.session_token', %s, false)", (token,))
    return conn


def test_an_officer_cannot_correct_a_case_their_unit_does_not_hold(officer, owner_conn, pg_env):
    """T73: A1 through the API and as the application role."""
    clerk = officer(UNIT, ["reception", "handling"])
    made = _record(clerk)
    code = made["code"]
    case = clerk.get(f"/api/cases/{code}").json()
    party_id = case["parties"][0]["id"]
    for who, status in ((officer(NEIGHBOUR, ["handling", "head"]), 404), (officer(PROVINCE, ["head"]), 403)):
        r = who.post(f"/api/cases/{code}/corrections", json={
            "version": case["version"], "target": "party", "target_id": party_id, "field": "full_name",
            "value": "Tên bị sửa trộm", "reason": "Sửa cho đúng"})
        assert r.status_code == status, r.text
        with _as_app(pg_env, who.token) as conn:
            conn.execute("SELECT set_config('kntc.change_reason', 'sửa cho đúng', false)")
            assert conn.execute("UPDATE kntc.party SET full_name = 'Tên bị sửa trộm' WHERE id = %s",
                                (party_id,)).rowcount == 0
            assert conn.execute("UPDATE kntc.petition SET content = 'Nội dung bị sửa trộm' WHERE case_id = %s",
                                (case["id"],)).rowcount == 0
    # Linking a petition into a case the officer may not read answers as if it did not exist.
    outsider = officer(NEIGHBOUR, ["reception"])
    found = outsider.post("/api/dedup/check", json={"parties": [{"full_name": "Ai Đó", "address_unit": NEIGHBOUR}],
                                                    "subject": "Đơn thử"}).json()
    r = outsider.post("/api/dedup/decisions", json={"check_id": found["check_id"], "decision": "linked",
                                                    "case_code": code,
                                                    "petition": {"channel": "letter", "content": "Chen vào hồ sơ"}})
    assert r.status_code == 404
    row = owner_conn.execute("SELECT p.full_name, (SELECT count(*) FROM kntc.petition x WHERE x.case_id = p.case_id) "
                             "AS petitions FROM kntc.party p WHERE p.id = %s", (party_id,)).fetchone()
    assert row["full_name"] == "Nguyễn Văn An" and row["petitions"] == 1


def test_a_correction_neither_reaches_nor_reveals_a_protected_denouncer(officer, owner_conn, pg_env):
    """T74: A2, a colleague not handling the case; and what every reader of the case sees."""
    clerk = officer(UNIT, ["reception", "handling"])
    name = f"Người Tố Cáo {secrets.token_hex(2)}"
    made = _record(clerk, kind="denunciation", denouncer_confidential=True,
                   parties=[{"role": "denouncer", "full_name": name, "id_number": "079190000777",
                             "address_unit": UNIT}])
    code = made["code"]
    denouncer = owner_conn.execute("SELECT p.id::text AS id FROM kntc.party p JOIN kntc.case_file c ON c.id = p.case_id "
                                   "WHERE c.code = %s", (code,)).fetchone()["id"]
    colleague = officer(UNIT, ["reception", "handling"])
    version = colleague.get(f"/api/cases/{code}").json()["version"]
    r = colleague.post(f"/api/cases/{code}/corrections", json={
        "version": version, "target": "party", "target_id": denouncer, "field": "address", "value": "Tìm ra rồi",
        "reason": "Thử xem ai tố cáo"})
    assert r.status_code == 404
    with _as_app(pg_env, colleague.token) as conn:
        conn.execute("SELECT set_config('kntc.change_reason', 'thử', false)")
        assert conn.execute("UPDATE kntc.party SET address = 'x' WHERE id = %s RETURNING full_name",
                            (denouncer,)).rowcount == 0
    # Nor through what the recording officer typed at the intake check (the query is theirs alone).
    with _as_app(pg_env, colleague.token) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT query FROM kntc.dedup_check")
    with _as_app(pg_env, colleague.token) as conn:
        others = conn.execute("SELECT kntc.dedup_check_parties(k.id) AS p FROM kntc.dedup_check k "
                              "WHERE k.account_id <> (kntc.actor()).account_id LIMIT 5").fetchall()
        assert others and all(r["p"] is None for r in others)
    # The officer handling it corrects the name; the record and the timeline that colleagues read hold
    # neither the old nor the new name, only the audit chain does.
    r = clerk.post(f"/api/cases/{code}/corrections", json={
        "version": version, "target": "party", "target_id": denouncer, "field": "full_name",
        "value": name + " Mới", "reason": "Sai chính tả tên"})
    assert r.status_code == 201, r.text
    seen = colleague.get(f"/api/cases/{code}").text
    assert name not in seen and "079190000777" not in seen
    kept = owner_conn.execute("SELECT changes::text AS c FROM kntc.correction WHERE id = %s",
                              (r.json()["correction"],)).fetchone()["c"]
    assert name not in kept and "protected" in kept


def test_the_application_role_cannot_record_a_petition_past_the_duplicate_check(officer, pg_env):
    """T75: A5 holding an officer's session inserts a case and petition without a decision."""
    clerk, other = officer(UNIT, ["reception"]), officer(UNIT, ["reception"])
    theirs = other.post("/api/dedup/check", json={"parties": [{"full_name": "Ai Đó", "address_unit": UNIT}],
                                                  "subject": "Đơn thử"}).json()["check_id"]
    mine = clerk.post("/api/dedup/check", json={"parties": [{"full_name": "Ai Đó", "address_unit": UNIT}],
                                                "subject": "Đơn thử"}).json()["check_id"]
    new_case = ("INSERT INTO kntc.case_file (code, kind, subject, content, channel, receiving_unit_id, handling_unit_id, "
                "received_on, lookup_secret_hash) SELECT kntc.next_case_code(u.id, 2026), 'complaint', 'Đơn chen ngang', "
                "'x', 'letter', u.id, u.id, current_date, '\\x00' FROM kntc.unit u WHERE u.code = %s RETURNING id")
    petition = ("INSERT INTO kntc.petition (case_id, unit_id, received_on, channel, content, intake_check_id) "
                "SELECT %s, u.id, current_date, 'letter', 'x', %s FROM kntc.unit u WHERE u.code = %s")

    def attempt(check_id: str | None, *, with_petition: bool = True) -> None:
        with _as_app(pg_env, clerk.token) as conn:
            case_id = conn.execute(new_case, (UNIT,)).fetchone()["id"]
            if with_petition:
                conn.execute(petition, (case_id, check_id, UNIT))
            conn.commit()

    with pytest.raises(psycopg.Error) as e:
        attempt(None)
    assert e.value.sqlstate == "KD001"
    with pytest.raises(psycopg.Error) as e:
        attempt(theirs)
    assert e.value.sqlstate == "KD002"
    with pytest.raises(psycopg.Error) as e:
        attempt(mine)  # the officer's own check, but no decision by commit
    assert e.value.sqlstate == "KD003"
    with pytest.raises(psycopg.Error) as e:
        attempt(None, with_petition=False)  # a case file with no petition at all
    assert e.value.sqlstate == "KD003"


def test_the_proposals_kept_with_a_case_name_no_case_the_reader_may_not_read(officer, owner_conn):
    """T76: A1 reading a case file to learn of the secret case its intake check proposed."""
    cleared = officer(UNIT, ["reception", "handling"], 2)
    idn = "001190" + f"{secrets.randbelow(10**6):06d}"
    secret = _record(cleared, classification=2, subject="Tố cáo sai phạm đấu thầu trường học",
                     parties=[{"role": "complainant", "full_name": "Kha Văn Mật", "id_number": idn,
                               "address_unit": UNIT}])["code"]
    # The cleared officer records a second, different matter of the same person, confirmed new although the
    # secret case was proposed.
    plain = _record(cleared, subject="Kiến nghị sửa cống thoát nước",
                    parties=[{"role": "complainant", "full_name": "Kha Văn Mật", "id_number": idn,
                              "address_unit": UNIT}])["code"]
    mine = cleared.get(f"/api/cases/{plain}").json()["intake"][0]["proposed"]
    assert secret in [c.get("case_code") for c in mine]
    colleague = officer(UNIT, ["reception"])
    seen = colleague.get(f"/api/cases/{plain}")
    assert seen.status_code == 200
    assert secret not in seen.text and seen.json()["intake"][0]["proposed"] == [{"held_elsewhere": True}]


def test_a_due_date_is_not_pushed_out_without_the_heads_extension(officer, owner_conn, pg_env):
    """T77: A2 (an officer of the unit, not its head) as the application role."""
    clerk = officer(UNIT, ["reception", "handling"])
    code = _record(clerk, kind="denunciation", parties=[{"role": "denouncer", "full_name": "Lò Văn Hạn"}])["code"]
    due = owner_conn.execute("SELECT d.due_on FROM kntc.case_deadline d JOIN kntc.case_file c ON c.id = d.case_id "
                             "WHERE c.code = %s AND d.step = 'accept'", (code,)).fetchone()["due_on"]
    step = "UPDATE kntc.case_deadline d SET {} FROM kntc.case_file c WHERE c.id = d.case_id AND c.code = %s " \
           "AND d.step = 'accept'"
    for sets in ("due_on = d.due_on + 60", "extensions = 1, due_on = d.due_on + 3"):
        with _as_app(pg_env, clerk.token) as conn, pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(step.format(sets), (code,))
    with _as_app(pg_env, clerk.token) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("INSERT INTO kntc.deadline_extension (case_id, step, extension_no, days, reason, approved_by, "
                     "unit_id, approved_on, old_due_on, new_due_on) SELECT c.id, 'accept', 1, 3, "
                     "'tự gia hạn cho mình', (SELECT (kntc.actor()).account_id), c.handling_unit_id, current_date, "
                     "%s, %s FROM kntc.case_file c WHERE c.code = %s", (due, date(2099, 1, 1), code))
    assert owner_conn.execute("SELECT d.due_on FROM kntc.case_deadline d JOIN kntc.case_file c ON c.id = d.case_id "
                              "WHERE c.code = %s AND d.step = 'accept'", (code,)).fetchone()["due_on"] == due


def test_a_deadline_rule_changes_only_by_a_central_administrator_through_its_door(officer, owner_conn, pg_env):
    """T78: A2 an administrator below the centre, A5 the application role, A7 the owner alone."""
    province_admin = officer(PROVINCE, ["sysadmin"])
    with _as_app(pg_env, province_admin.token) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT kntc.deadline_rule_edit('TC-NOTIFY', current_date, "
                     "'{\"days\": 60, \"legal_basis\": \"Luật Tố cáo 2018\"}', 'cho thêm thời gian thông báo')")
    for sql in ("UPDATE kntc.deadline_rule SET days = 60 WHERE code = 'TC-NOTIFY'",
                "INSERT INTO kntc.deadline_rule_version SELECT * FROM kntc.deadline_rule_version LIMIT 0"):
        with _as_app(pg_env, province_admin.token) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        owner_conn.execute("UPDATE kntc.deadline_rule SET days = 60 WHERE code = 'TC-NOTIFY'")
    assert owner_conn.execute("SELECT days FROM kntc.deadline_rule WHERE code = 'TC-NOTIFY'").fetchone()["days"] == 5
