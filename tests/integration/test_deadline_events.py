"""Deadlines that start and end on events, through the API as officers work: every rule walked from
its start to its end, the notice of acceptance that ends TC-NOTIFY, the filing limits, a second
complaint round on the same file, extensions as the law allows, the recount of false overdue steps,
and a rule edited on a running server."""

from __future__ import annotations

import os
import subprocess
from datetime import date, timedelta

from core_app.app import vietnam_today
from core_app.domain.deadlines import Calendar
from tests.conftest import BIN, act, petition_body

UNIT, OTHER = "X00004", "X00008"
ALL = ["reception", "handling", "resolution", "head"]


def _record(o, **over) -> dict:
    r = o.post("/api/cases", json=petition_body(**over))
    assert r.status_code == 201, r.text
    return r.json()


def _steps(o, code: str) -> dict[str, dict]:
    return {d["step"]: d for d in o.get(f"/api/cases/{code}").json()["deadlines"]}


def _started(steps: dict, step: str, rule: str) -> None:
    assert steps[step]["rule_code"] == rule and steps[step]["met_on"] is None, steps.get(step)


def _ended(steps: dict, step: str, rule: str, event: str) -> None:
    row = steps[step]
    assert row["rule_code"] == rule and row["met_on"] is not None and row["ended_by"] == event, row


def _denouncer() -> list[dict]:
    return [{"role": "denouncer", "full_name": "Ngô Thị Tố", "address_unit": UNIT}]


def test_each_rule_starts_and_ends_on_its_events(officer, owner_conn):
    here, there = officer(UNIT, ALL), officer(OTHER, ALL)
    today = vietnam_today()
    walked: set[str] = set()

    # A first complaint: the filing limit (known -> receipt), acceptance, resolution, then a second
    # round on the same file at the competent unit, with its own filing limit, acceptance and resolution.
    made = _record(here, decision_known_on=(today - timedelta(days=20)).isoformat())
    code = made["code"]
    assert made["filing"]["rule"] == "KN1-FILE" and made["filing"]["late"] is False
    s = _steps(here, code)
    _ended(s, "file", "KN1-FILE", "receipt")
    _started(s, "accept", "KN1-ACCEPT")
    act(here, code, "submit")
    act(here, code, "accept")
    s = _steps(here, code)
    _ended(s, "accept", "KN1-ACCEPT", "accept")
    _started(s, "resolve", "KN1-RESOLVE")
    act(here, code, "resolve", summary="Giữ nguyên quyết định hành chính")
    _ended(_steps(here, code), "resolve", "KN1-RESOLVE", "resolve")
    walked |= {"KN1-FILE", "KN1-ACCEPT", "KN1-RESOLVE"}

    answer = act(here, code, "second_round", target_unit=OTHER, note="Không đồng ý với quyết định lần đầu")
    assert answer["status"] == "received" and answer["first_round"]["resolution_summary"].startswith("Giữ nguyên")
    case = there.get(f"/api/cases/{code}").json()
    assert case["code"] == code and case["complaint_round"] == 2 and case["handling_unit"] == OTHER
    s = _steps(there, code)
    _ended(s, "file.r2", "KN2-FILE", "receipt")
    _started(s, "accept.r2", "KN2-ACCEPT")
    _ended(s, "accept", "KN1-ACCEPT", "accept")  # the first round's steps stay beside the second's
    act(there, code, "submit")
    act(there, code, "accept")
    s = _steps(there, code)
    _ended(s, "accept.r2", "KN2-ACCEPT", "accept")
    _started(s, "resolve.r2", "KN2-RESOLVE")
    act(there, code, "resolve", summary="Quyết định giải quyết khiếu nại lần hai")
    _ended(_steps(there, code), "resolve.r2", "KN2-RESOLVE", "resolve")
    assert [e["action"] for e in there.get(f"/api/cases/{code}").json()["timeline"]].count("second_round") == 1
    walked |= {"KN2-FILE", "KN2-ACCEPT", "KN2-RESOLVE"}

    # A denunciation outside competence: the transfer limit (and the acceptance check) end on forward.
    code = _record(here, kind="denunciation", parties=_denouncer())["code"]
    s = _steps(here, code)
    _started(s, "transfer", "TC-TRANSFER")
    _started(s, "accept", "TC-ACCEPT")
    act(here, code, "submit")
    act(here, code, "forward", target_unit=OTHER)
    # The forward ended both (the audit chain keeps that image); the competent unit's own limits then
    # start on its receipt.
    ended = owner_conn.execute(
        "SELECT l.after ->> 'step' AS step FROM kntc.audit_log l JOIN kntc.case_file c "
        "ON l.row_key IN (c.id::text || '/transfer', c.id::text || '/accept') "
        "WHERE c.code = %s AND l.table_name = 'case_deadline' AND l.after ->> 'ended_by' = 'forward'",
        (code,)).fetchall()
    assert {r["step"] for r in ended} == {"transfer", "accept"}
    s = _steps(there, code)
    _started(s, "transfer", "TC-TRANSFER")
    _started(s, "accept", "TC-ACCEPT")
    walked.add("TC-TRANSFER")

    # A denunciation within competence: accepted, notice sent, concluded.
    code = _record(here, kind="denunciation", parties=_denouncer())["code"]
    act(here, code, "submit")
    act(here, code, "accept")
    s = _steps(here, code)
    _ended(s, "accept", "TC-ACCEPT", "accept")
    _ended(s, "transfer", "TC-TRANSFER", "accept")
    _started(s, "notify_acceptance", "TC-NOTIFY")
    _started(s, "resolve", "TC-RESOLVE")
    act(here, code, "notify_acceptance", note="Đã gửi thông báo thụ lý số 5/TB")
    _ended(_steps(here, code), "notify_acceptance", "TC-NOTIFY", "notify_acceptance")
    act(here, code, "resolve", summary="Kết luận nội dung tố cáo")
    _ended(_steps(here, code), "resolve", "TC-RESOLVE", "resolve")
    walked |= {"TC-ACCEPT", "TC-NOTIFY", "TC-RESOLVE"}

    # Recommendations and several contents: handling ends on guiding or keeping on file.
    code = _record(here, kind="recommendation", parties=[{"role": "petitioner", "full_name": "Hà Văn Kiến"}])["code"]
    _started(_steps(here, code), "accept", "KNPA-ACCEPT")
    act(here, code, "submit")
    act(here, code, "guide", note="Hướng dẫn gửi đến Sở Giao thông")
    _ended(_steps(here, code), "accept", "KNPA-ACCEPT", "guide")
    code = _record(here, kind="multi", parties=[{"role": "petitioner", "full_name": "Hà Văn Nhiều"}])["code"]
    _started(_steps(here, code), "accept", "MULTI-ACCEPT")
    act(here, code, "submit")
    act(here, code, "file_away", note="Đơn trùng nội dung đã giải quyết")
    _ended(_steps(here, code), "accept", "MULTI-ACCEPT", "file_away")
    walked |= {"KNPA-ACCEPT", "MULTI-ACCEPT"}

    # Wrong data: its correction limit starts on discovery and ends on the correction.
    r = here.post(f"/api/cases/{code}/discrepancies", json={"description": "Sai tên người gửi đơn"})
    assert r.status_code == 201 and r.json()["rule_code"] == "DATA-CORRECT", r.text
    assert r.json()["due_on"] == Calendar().add_working_days(today, 5).isoformat()
    version = here.get(f"/api/cases/{code}").json()["version"]
    r = here.post(f"/api/cases/{code}/corrections", json={"version": version, "target": "case", "field": "subject",
                                                          "value": "Đơn nhiều nội dung về đất đai và môi trường",
                                                          "reason": "Sửa theo hồ sơ giấy", "discrepancy_id": r.json()["id"]})
    assert r.status_code == 201 and r.json()["late"] is False, r.text
    walked.add("DATA-CORRECT")

    rules = here.get("/api/deadlines/rules").json()
    assert all(r["end_events"] and r["start_event"] for r in rules)
    assert walked == {r["code"] for r in rules}, "a rule without a walk from its start to its end"


def test_an_accepted_and_notified_denunciation_is_not_overdue(officer, owner_conn):
    head = officer(UNIT, ALL)
    code = _record(head, kind="denunciation", parties=_denouncer())["code"]
    act(head, code, "submit")
    act(head, code, "accept")
    # As if accepted weeks ago (an earlier due date needs no extension; a later one would).
    owner_conn.execute("UPDATE kntc.case_deadline d SET due_on = current_date - 20 FROM kntc.case_file c "
                       "WHERE c.id = d.case_id AND c.code = %s AND d.step = 'notify_acceptance'", (code,))

    def overdue_steps() -> set[str]:
        rows = head.get("/api/deadlines/overdue", params={"unit": UNIT, "limit": 5000}).json()["data"]
        return {r["step"] for r in rows if r["code"] == code}

    assert overdue_steps() == {"notify_acceptance"}
    act(head, code, "notify_acceptance", note="Thông báo thụ lý đã gửi người tố cáo và người bị tố cáo")
    assert overdue_steps() == set()
    # The notice is a denunciation's: a complaint is told no.
    complaint = _record(head)["code"]
    act(head, complaint, "submit")
    act(head, complaint, "accept")
    assert act(head, complaint, "notify_acceptance", expect=409)["error"] == "not_applicable"


def test_a_complaint_filed_after_its_limit_is_recorded_and_flagged(officer):
    clerk = officer(UNIT, ["reception"])
    made = _record(clerk, decision_known_on=(vietnam_today() - timedelta(days=120)).isoformat())
    assert made["filing"]["late"] is True and "Điều 9" in made["filing"]["legal_basis"]
    assert made["filing"]["message"].startswith("Đơn đến sau thời hiệu") and made["filing"]["message_en"]
    row = _steps(clerk, made["code"])["file"]
    assert row["met_on"] > row["due_on"]  # recorded late, never listed as the unit's overdue step
    r = clerk.post("/api/cases", json=petition_body(decision_known_on=(vietnam_today() + timedelta(days=1)).isoformat()))
    assert r.status_code == 400 and r.json()["field"] == "decision_known_on"


def test_extensions_need_the_head_a_reason_and_stay_within_the_law(officer):
    head, resolver = officer(UNIT, ALL), officer(UNIT, ["handling", "resolution"])
    code = _record(head, kind="denunciation", parties=_denouncer())["code"]
    # Art. 24(1): the acceptance check, 7 working days, extendable once to 10.
    accept = _steps(head, code)["accept"]
    act(head, code, "submit")
    r = act(head, code, "extend", step="accept", note="Cần xác minh thêm thông tin người tố cáo")
    assert r["new_due_on"] == Calendar().add_working_days(date.fromisoformat(accept["starts_on"]), 10).isoformat()
    assert act(head, code, "extend", 409, step="accept", note="Lần hai: vẫn cần xác minh")["error"] == \
        "no_extension_left"
    act(head, code, "accept")
    assert act(resolver, code, "extend", 403, note="Không phải thủ trưởng")["error"] == "role_not_allowed"
    assert act(head, code, "extend", 400, level="complex", note="ngắn")["error"] == "missing_field"
    # Art. 30: the second extension only for an especially complex case.
    act(head, code, "extend", level="complex", note="Vụ việc phức tạp, nhiều nội dung", decision_ref="7/QĐ-GH")
    refused = act(head, code, "extend", 409, level="complex", note="Vẫn phức tạp, cần thêm thời gian")
    assert refused["error"] == "no_extension_left" and "đặc biệt phức tạp" in refused["message"]
    case = head.get(f"/api/cases/{code}").json()
    ext = [e for e in case["extensions"] if e["step"] == "resolve"]
    assert len(ext) == 1 and ext[0]["approved_by"] == head.username and ext[0]["decision_ref"] == "7/QĐ-GH"
    # A complaint's resolution limit has no extension (Complaints Law 2011).
    complaint = _record(head)["code"]
    act(head, complaint, "submit")
    act(head, complaint, "accept")
    assert act(head, complaint, "extend", 409, note="Khiếu nại phức tạp cần gia hạn")["error"] == "no_extension_left"


def test_the_recount_clears_false_overdue_entries_and_says_which(officer, owner_conn, pg_env):
    head = officer(UNIT, ALL)

    def denunciation() -> str:
        code = _record(head, kind="denunciation", parties=_denouncer())["code"]
        act(head, code, "submit")
        act(head, code, "accept")
        return code

    def as_before_end_events(code: str) -> None:
        # The state the platform recorded before steps had end events: TC-NOTIFY open, long overdue.
        owner_conn.execute("UPDATE kntc.case_deadline d SET met_on = NULL, ended_by = NULL, due_on = '2026-01-09' "
                           "FROM kntc.case_file c WHERE c.id = d.case_id AND c.code = %s "
                           "AND d.step = 'notify_acceptance'", (code,))

    finished = denunciation()
    act(head, finished, "resolve", summary="Kết luận: tố cáo sai")
    act(head, finished, "close")
    notified = denunciation()
    act(head, notified, "notify_acceptance", note="Đã thông báo")
    waiting = denunciation()
    for code in (finished, notified, waiting):
        as_before_end_events(code)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "kntc"), "deadlines", "recount", *args], env={**os.environ, **pg_env},
                              capture_output=True, text=True, timeout=300)

    def open_notice(code: str) -> bool:
        return owner_conn.execute("SELECT d.met_on IS NULL AS open FROM kntc.case_deadline d JOIN kntc.case_file c "
                                  "ON c.id = d.case_id WHERE c.code = %s AND d.step = 'notify_acceptance'",
                                  (code,)).fetchone()["open"]

    dry = run("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert finished in dry.stdout and notified in dry.stdout and waiting not in dry.stdout
    assert "would change" in dry.stdout and open_notice(finished) and open_notice(notified)

    done = run()
    assert done.returncode == 0, done.stderr
    lines = {line.split("\t")[0]: line for line in done.stdout.splitlines() if "\t" in line}
    assert "recount: case closed" in lines[finished]
    assert "notify_acceptance (recount)" in lines[notified]
    assert waiting not in lines and "still overdue\tTC-NOTIFY" in done.stdout
    assert not open_notice(finished) and not open_notice(notified) and open_notice(waiting)
    overdue = {r["code"] for r in head.get("/api/deadlines/overdue", params={"unit": UNIT, "limit": 5000}).json()["data"]}
    assert waiting in overdue and finished not in overdue and notified not in overdue
    again = run()
    assert finished not in again.stdout and notified not in again.stdout  # once cleared, nothing to do


def test_a_rule_edited_by_a_central_administrator_takes_effect_without_restart(officer, owner_conn):
    national = officer("VN", ["sysadmin"])
    province_admin = officer("T01", ["sysadmin"])
    clerk = officer(UNIT, ["reception"])
    today = vietnam_today()
    cal = Calendar({r["day"]: r["is_working"] for r in owner_conn.execute(
        "SELECT day, is_working FROM kntc.calendar_override").fetchall()})

    def accept_due() -> str:
        code = _record(clerk, kind="multi", parties=[{"role": "petitioner", "full_name": "Tạ Văn Quy"}])["code"]
        return _steps(clerk, code)["accept"]["due_on"]

    def edit(who, **body) -> object:
        return who.post("/api/deadlines/rules/MULTI-ACCEPT/versions", json={
            "effective_from": today.isoformat(), "legal_basis": "Thông tư 05/2021/TT-TTCP, Điều 6 (bản thử)",
            "reason": "Thử sửa thời hạn xử lý đơn nhiều nội dung", **body})

    assert accept_due() == cal.add_working_days(today, 10).isoformat()
    r = edit(province_admin, days=12)
    assert r.status_code == 403 and r.json()["message"].startswith("Chỉ quản trị hệ thống cấp trung ương")
    assert edit(national, days=12, legal_basis="").status_code == 422
    assert edit(national, end_events=["never"]).status_code == 422
    assert edit(national, days=12, effective_from="2018-01-01").status_code == 400
    r = edit(national, days=12)
    assert r.status_code == 201 and r.json()["version"] >= 2, r.text
    try:
        # Both server workers (and any host) see it on their next request: four cases, all counted anew.
        assert {accept_due() for _ in range(4)} == {cal.add_working_days(today, 12).isoformat()}
        rule = next(x for x in national.get("/api/deadlines/rules").json() if x["code"] == "MULTI-ACCEPT")
        assert rule["days"] == 12 and rule["legal_basis"].endswith("(bản thử)")
        assert rule["versions"][-1]["reason"].startswith("Thử sửa") and rule["versions"][-1]["edited_by"]
        assert rule["versions"][0]["days"] == 10  # the history stays
    finally:
        assert edit(national, days=10, legal_basis="Thông tư 05/2021/TT-TTCP (xử lý đơn)").status_code == 201
    assert accept_due() == cal.add_working_days(today, 10).isoformat()


def test_the_rules_listing_shows_the_version_in_force_on_the_services_day(officer, pg_env):
    """A version dated tomorrow is listed, not in force; on its day it is the rule shown, with no
    write at all (the stored row follows only edits in force the day they are made)."""
    import asyncio

    import psycopg as pg
    from psycopg.rows import dict_row as rows

    from core_app.repo import rules as rules_repo

    national = officer("VN", ["sysadmin"])
    today = vietnam_today()
    tomorrow = today + timedelta(days=1)

    def listed() -> dict:
        return next(x for x in national.get("/api/deadlines/rules").json() if x["code"] == "TC-NOTIFY")

    before = listed()

    def edit(days: int) -> None:
        r = national.post("/api/deadlines/rules/TC-NOTIFY/versions", json={
            "effective_from": tomorrow.isoformat(), "days": days, "reason": "Thử phiên bản có hiệu lực ngày mai",
            "legal_basis": "Luật Tố cáo 2018 (bản thử, hiệu lực ngày mai)"})
        assert r.status_code == 201, r.text

    async def listed_on(day: date) -> dict:
        async with await pg.AsyncConnection.connect(pg_env["KNTC_ADMIN_DATABASE_URL"], row_factory=rows) as conn:
            return next(x for x in await rules_repo.list_rules(conn, day) if x["code"] == "TC-NOTIFY")

    edit(before["days"] + 7)
    try:
        now = listed()
        assert now["days"] == before["days"] and now["version"] == before["version"]
        assert now["versions"][-1]["effective_from"] == tomorrow.isoformat()
        then = asyncio.run(listed_on(tomorrow))
        assert then["days"] == before["days"] + 7 and then["effective_from"] == tomorrow
    finally:
        edit(before["days"])  # the same day's latest edit is the one in force
