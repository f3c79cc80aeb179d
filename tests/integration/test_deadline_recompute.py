"""A correction of what a deadline is counted from (complexity, the day received, the kind) recomputes
the case's open steps from the rules in force; closed steps stay as recorded; each change is kept
(kntc.deadline_recompute, the audit chain) and shown on the case file."""

from __future__ import annotations

from datetime import date, timedelta

from core_app.app import vietnam_today
from core_app.domain.deadlines import Calendar
from tests.conftest import act, petition_body

UNIT = "X00004"
ALL = ["reception", "handling", "resolution", "head"]


def _record(o, **over) -> dict:
    r = o.post("/api/cases", json=petition_body(**over))
    assert r.status_code == 201, r.text
    return r.json()


def _correct(o, code: str, field: str, value) -> dict:
    version = o.get(f"/api/cases/{code}").json()["version"]
    r = o.post(f"/api/cases/{code}/corrections", json={
        "version": version, "target": "case", "field": field, "value": value,
        "reason": "Sửa theo hồ sơ giấy của vụ việc"})
    assert r.status_code == 201, r.text
    return r.json()


def _steps(o, code: str) -> dict[str, dict]:
    return {d["step"]: d for d in o.get(f"/api/cases/{code}").json()["deadlines"]}


def _rule(owner_conn, code: str) -> dict:
    return owner_conn.execute("SELECT days, complex_days, day_unit FROM kntc.deadline_rule WHERE code = %s",
                              (code,)).fetchone()


def _recomputed(owner_conn, case_code: str) -> list[dict]:
    return owner_conn.execute(
        "SELECT x.step, x.rule_before, x.due_before, x.rule_after, x.starts_after, x.due_after, x.cause "
        "FROM kntc.deadline_recompute x JOIN kntc.case_file c ON c.id = x.case_id WHERE c.code = %s "
        "ORDER BY x.created_at, x.step", (case_code,)).fetchall()


def test_complexity_corrected_recounts_the_open_resolution_limit_not_the_closed_acceptance(officer, owner_conn):
    o = officer(UNIT, ALL)
    code = _record(o)["code"]
    act(o, code, "submit")
    act(o, code, "accept")
    before = _steps(o, code)
    assert before["accept"]["met_on"] is not None and before["resolve"]["met_on"] is None

    _correct(o, code, "is_complex", True)

    after = _steps(o, code)
    rule = _rule(owner_conn, "KN1-RESOLVE")
    start = date.fromisoformat(after["resolve"]["starts_on"])
    assert after["resolve"]["due_on"] == Calendar().due_date(start, rule["complex_days"], rule["day_unit"]).isoformat()
    assert after["resolve"]["due_on"] > before["resolve"]["due_on"]  # the guard let the later date through
    assert after["accept"] == before["accept"]  # closed: as recorded
    [rec] = _recomputed(owner_conn, code)
    assert (rec["step"], rec["rule_before"], rec["rule_after"]) == ("resolve", "KN1-RESOLVE", "KN1-RESOLVE")
    assert rec["cause"] == {"is_complex": {"before": False, "after": True}}
    # On the case file: the timeline's edit names the recount, the page lists it.
    case = o.get(f"/api/cases/{code}").json()
    edit = [e for e in case["timeline"] if e["action"] == "edit"][-1]
    assert edit["data"]["deadlines_recomputed"][0]["step"] == "resolve"
    page = o.get(f"/app/cases/{code}").text
    assert 'id="recomputed"' in page and "KN1-RESOLVE" in page
    # In the audit chain.
    n = owner_conn.execute("SELECT count(*) AS n FROM kntc.audit_log WHERE table_name = 'deadline_recompute' "
                           "AND after ->> 'step' = 'resolve' AND after ->> 'case_id' = %s", (case["id"],)).fetchone()
    assert n["n"] == 1


def test_the_day_received_corrected_moves_the_steps_started_on_receipt(officer, owner_conn):
    o = officer(UNIT, ALL)
    today = vietnam_today()
    made = _record(o, decision_known_on=(today - timedelta(days=40)).isoformat())
    code = made["code"]
    before = _steps(o, code)
    assert before["file"]["met_on"] is not None and before["accept"]["met_on"] is None

    earlier = today - timedelta(days=20)
    _correct(o, code, "received_on", earlier.isoformat())

    after = _steps(o, code)
    rule = _rule(owner_conn, "KN1-ACCEPT")
    assert after["accept"]["starts_on"] == earlier.isoformat()
    assert after["accept"]["due_on"] == Calendar().due_date(earlier, rule["days"], rule["day_unit"]).isoformat()
    assert after["file"] == before["file"]  # the filing limit closed on the recorded receipt
    [rec] = _recomputed(owner_conn, code)
    assert rec["step"] == "accept" and rec["starts_after"] == earlier
    assert rec["cause"] == {"received_on": {"before": today.isoformat(), "after": earlier.isoformat()}}
    # A date in the future is refused, and changes nothing.
    version = o.get(f"/api/cases/{code}").json()["version"]
    r = o.post(f"/api/cases/{code}/corrections", json={
        "version": version, "target": "case", "field": "received_on", "value": (today + timedelta(days=3)).isoformat(),
        "reason": "Sửa theo hồ sơ giấy"})
    assert r.status_code == 400
    assert _steps(o, code)["accept"]["starts_on"] == earlier.isoformat()


def test_the_kind_corrected_takes_the_new_kinds_rules(officer, owner_conn):
    o = officer(UNIT, ALL)
    # A denunciation corrected to a complaint: its acceptance limit becomes the complaint's; the
    # transfer limit, a denunciation's only, no longer applies and is ended, not left overdue.
    code = _record(o, kind="denunciation", parties=[
        {"role": "denouncer", "full_name": "Ngô Thị Tố", "address_unit": UNIT}])["code"]
    before = _steps(o, code)
    assert before["accept"]["rule_code"] == "TC-ACCEPT" and before["transfer"]["met_on"] is None

    _correct(o, code, "kind", "complaint")

    after = _steps(o, code)
    rule = _rule(owner_conn, "KN1-ACCEPT")
    start = date.fromisoformat(after["accept"]["starts_on"])
    assert after["accept"]["rule_code"] == "KN1-ACCEPT" and after["accept"]["met_on"] is None
    assert after["accept"]["due_on"] == Calendar().due_date(start, rule["days"], rule["day_unit"]).isoformat()
    assert after["transfer"]["met_on"] is not None and after["transfer"]["ended_by"] == "recompute: not applicable"
    got = {r["step"]: (r["rule_before"], r["rule_after"]) for r in _recomputed(owner_conn, code)}
    assert got == {"accept": ("TC-ACCEPT", "KN1-ACCEPT"), "transfer": ("TC-TRANSFER", None)}

    # And back: the denunciation's transfer limit starts again as of the receipt.
    _correct(o, code, "kind", "denunciation")
    again = _steps(o, code)
    assert again["accept"]["rule_code"] == "TC-ACCEPT"
    assert again["transfer"]["rule_code"] == "TC-TRANSFER"


def test_a_correction_of_another_field_recounts_nothing(officer, owner_conn):
    o = officer(UNIT, ALL)
    code = _record(o)["code"]
    before = _steps(o, code)
    _correct(o, code, "subject", "Khiếu nại quyết định bồi thường khi thu hồi đất")
    assert _steps(o, code) == before and _recomputed(owner_conn, code) == []
