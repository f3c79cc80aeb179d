"""A citizen's consent to notifications after reception: withdrawn, given again or moved to another
channel by the citizen on the lookup page (case code and secret) or by the officer at the case file on
the citizen's request (with a reason). After a withdrawal nothing is queued for them, and what was
queued but not sent is cancelled; every change is on the case file and in the audit chain."""

from __future__ import annotations

import re

import psycopg

from tests.conftest import act, petition_body
from tests.notify_support import consenting

UNIT = "X00004"
ALL = ["reception", "handling", "resolution", "head"]


def _record(o, *channels: str) -> dict:
    r = o.post("/api/cases", json=petition_body(parties=[consenting(*channels)]))
    assert r.status_code == 201, r.text
    return r.json()


def _outbox(owner_conn: psycopg.Connection, code: str) -> list[tuple[str, str, str]]:
    rows = owner_conn.execute(
        "SELECT n.event, n.channel, n.status FROM kntc.notification n JOIN kntc.case_file c ON c.id = n.case_id "
        "WHERE c.code = %s ORDER BY n.created_at, n.channel", (code,)).fetchall()
    return [(r["event"], r["channel"], r["status"]) for r in rows]


def _choice(citizen, code: str, secret: str, *channels: str):
    citizen.get("/lookup")
    return citizen.post("/lookup/notifications", {"code": code, "secret": secret, "channel": list(channels)})


def test_the_citizen_withdraws_and_nothing_queued_is_sent_nor_queued_again(officer, web, owner_conn):
    o = officer(UNIT, ALL)
    made = _record(o, "sms", "email")
    code, secret = made["code"], made["lookup_secret"]
    assert _outbox(owner_conn, code) == [("received", "email", "queued"), ("received", "sms", "queued")]

    citizen = web()
    citizen.get("/lookup")
    page = citizen.post("/lookup", {"code": code, "secret": secret})
    assert page.status_code == 200 and 'id="lookup-notify"' in page.text
    assert "Hiện đang nhận thông báo qua thư điện tử, SMS" in page.text
    assert secret not in page.text  # typed again for the change, never put back into a page

    r = _choice(citizen, code, secret)  # nothing ticked: withdrawn
    assert r.status_code == 200 and 'id="notify-saved"' in r.text and "không nhận thông báo nữa" in r.text
    assert _outbox(owner_conn, code) == [("received", "email", "cancelled"), ("received", "sms", "cancelled")]
    act(o, code, "submit")
    act(o, code, "accept")
    assert [x for x in _outbox(owner_conn, code) if x[0] == "accepted"] == []

    # Given again, by SMS only: the next event is sent by SMS, not by e-mail.
    r = _choice(citizen, code, secret.lower(), "sms")
    assert r.status_code == 200 and "Đã ghi nhận: nhận thông báo qua SMS" in r.text
    act(o, code, "resolve", summary="Chấp nhận một phần khiếu nại")
    assert [x for x in _outbox(owner_conn, code) if x[0] == "resolved"] == [("resolved", "sms", "queued")]

    # On the case file, and in the audit chain.
    case = o.get(f"/api/cases/{code}").json()
    assert case["parties"][0]["notify_channels"] == ["sms"]
    html = o.get(f"/app/cases/{code}").text
    assert 'id="consent-changes"' in html and "công dân tự thay đổi khi tra cứu" in html
    audit = owner_conn.execute(
        "SELECT count(*) AS n FROM kntc.audit_log WHERE table_name = 'notify_consent_change' "
        "AND after ->> 'case_id' = %s", (case["id"],)).fetchone()
    assert audit["n"] == 2


def test_the_citizen_changes_channel_only_to_one_with_an_address_on_file(officer, web, owner_conn):
    o = officer(UNIT, ALL)
    r = o.post("/api/cases", json=petition_body(parties=[consenting("sms", email_=None) | {"email": None}]))
    assert r.status_code == 201, r.text
    code, secret = r.json()["code"], r.json()["lookup_secret"]
    citizen = web()
    page = _choice(citizen, code, secret, "sms", "email")  # e-mail has no address: only SMS is recorded
    assert page.status_code == 200 and 'value="email"' not in page.text
    assert o.get(f"/api/cases/{code}").json()["parties"][0]["notify_channels"] == ["sms"]


def test_the_officer_records_the_citizens_request_with_a_reason(officer, web_officer, owner_conn):
    o = officer(UNIT, ALL)
    made = _record(o, "sms", "email")
    code = made["code"]
    clerk = web_officer(UNIT, ["reception", "handling"])
    page = clerk.get(f"/app/cases/{code}")
    assert 'class="inline-form consent-form"' in page.text
    party = re.search(r'name="party_id" value="([0-9a-f-]{36})"', page.text).group(1)

    # Without a reason: refused, nothing changes.
    r = clerk.post(f"/app/cases/{code}/notify-consent", {"party_id": party, "channel": ["email"], "reason": "x"})
    assert r.status_code == 400 and 'id="consent-error"' in r.text
    assert sorted(o.get(f"/api/cases/{code}").json()["parties"][0]["notify_channels"]) == ["email", "sms"]

    r = clerk.post(f"/app/cases/{code}/notify-consent", {
        "party_id": party, "channel": ["email"], "reason": "Công dân gọi điện đề nghị chỉ nhận thư điện tử"})
    assert r.status_code == 303, r.text
    assert _outbox(owner_conn, code) == [("received", "email", "queued"), ("received", "sms", "cancelled")]
    html = clerk.get(f"/app/cases/{code}").text
    assert "Công dân gọi điện đề nghị chỉ nhận thư điện tử" in html and "hủy 1 tin chưa gửi" in html
    row = owner_conn.execute(
        "SELECT x.source, x.reason, x.before, x.after, a.username FROM kntc.notify_consent_change x "
        "JOIN kntc.account a ON a.id = x.changed_by WHERE x.party_id = %s", (party,)).fetchone()
    assert (row["source"], row["before"], row["after"]) == ("officer", ["email", "sms"], ["email"])

    # Withdrawn entirely at the citizen's request.
    r = clerk.post(f"/app/cases/{code}/notify-consent", {"party_id": party, "reason": "Công dân không muốn nhận nữa"})
    assert r.status_code == 303
    assert {s for _, _, s in _outbox(owner_conn, code)} == {"cancelled"}
    consent = owner_conn.execute("SELECT notify_channels, notify_consent_at FROM kntc.party WHERE id = %s",
                                 (party,)).fetchone()
    assert consent["notify_channels"] == [] and consent["notify_consent_at"] is None


def test_a_bad_party_id_is_a_clear_400(web_officer):
    clerk = web_officer(UNIT, ["handling"])
    clerk.get("/app")
    r = clerk.post("/app/cases/X00004-2026-000001/notify-consent",
                   {"party_id": "z" * 36, "reason": "Công dân đề nghị nhận lại"})
    assert r.status_code == 400 and "Traceback" not in r.text
