"""Attacks on a citizen's consent to notifications after reception: guessing codes and secrets through the
consent form (or learning from it which cases exist or have a phone on file), another unit's officer or
the level above changing it, and the application role's password used to change it without the citizen.

Threat rows (runbooks/security.md): T92, T93, T94.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.rows import dict_row

from tests.conftest import own_address, petition_body
from tests.notify_support import consenting
from tests.web.conftest import WebUser

UNIT, OTHER, PROVINCE = "X00004", "X00008", "T01"
WRONG = "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"


def _record(o) -> dict:
    r = o.post("/api/cases", json=petition_body(parties=[consenting("sms", "email")]))
    assert r.status_code == 201, r.text
    return r.json()


def _channels(owner_conn: psycopg.Connection, code: str) -> list[str]:
    return owner_conn.execute("SELECT p.notify_channels FROM kntc.party p JOIN kntc.case_file c ON c.id = p.case_id "
                              "WHERE c.code = %s", (code,)).fetchone()["notify_channels"]


def _error(r) -> str:
    return re.search(r'id="lookup-error">([^<]+)<', r.text).group(1)


def test_a_wrong_code_or_secret_gets_the_lookups_answer_and_changes_nothing(server, officer, owner_conn):
    """T92: the consent form is no oracle: a wrong secret, a code that does not exist, and the lookup
    itself answer alike; each failure spends the address's lookup budget."""
    made = _record(officer(UNIT, ["reception", "handling"]))
    code = made["code"]
    citizen = WebUser(server)
    citizen.get("/lookup")
    addr = citizen.client.headers["X-Real-IP"]
    lookup = citizen.post("/lookup", {"code": code, "secret": WRONG})
    wrong_secret = citizen.post("/lookup/notifications", {"code": code, "secret": WRONG})
    missing = citizen.post("/lookup/notifications", {"code": code[:-3] + "999", "secret": WRONG, "channel": "sms"})
    assert lookup.status_code == wrong_secret.status_code == missing.status_code == 404
    assert _error(lookup) == _error(wrong_secret) == _error(missing)
    for r in (wrong_secret, missing):
        assert 'id="lookup-notify"' not in r.text and 'id="lookup-result"' not in r.text
    assert sorted(_channels(owner_conn, code)) == ["email", "sms"]
    spent = owner_conn.execute("SELECT hits FROM kntc.throttle_state('lookup_fail', %s)", (addr,)).fetchone()
    assert spent["hits"] == 3  # the consent form counts against the lookup's own budget


def test_the_page_shows_no_address_and_no_other_partys_name(server, officer):
    made = _record(officer(UNIT, ["reception", "handling"]))
    case = officer(UNIT, ["head"]).get(f"/api/cases/{made['code']}").json()
    party = case["parties"][0]
    citizen = WebUser(server)
    citizen.get("/lookup")
    r = citizen.post("/lookup", {"code": made["code"], "secret": made["lookup_secret"]})
    assert r.status_code == 200 and 'id="lookup-notify"' in r.text
    for leaked in (party["phone"], party["email"], party["full_name"], made["lookup_secret"]):
        assert leaked not in r.text


def test_another_units_officer_or_the_level_above_cannot_change_it(server, officer, web_officer, make_account,
                                                                    owner_conn):
    """T93: only the unit holding the case records the citizen's request; the province above, which may
    read the case, and a neighbouring commune, which may not, are refused alike."""
    made = _record(officer(UNIT, ["reception", "handling"]))
    code = made["code"]
    party = officer(UNIT, ["head"]).get(f"/api/cases/{code}").json()["parties"][0]["id"]
    for unit in (OTHER, PROVINCE):
        intruder = web_officer(unit, ["head", "handling"], 2)
        page = intruder.get(f"/app/cases/{code}")
        assert 'consent-form' not in page.text
        r = intruder.post(f"/app/cases/{code}/notify-consent",
                          {"party_id": party, "reason": "Công dân đề nghị không nhận thông báo"})
        assert r.status_code == 403, (unit, r.status_code)
    assert sorted(_channels(owner_conn, code)) == ["email", "sms"]
    assert owner_conn.execute("SELECT count(*) AS n FROM kntc.notify_consent_change WHERE party_id = %s",
                              (party,)).fetchone()["n"] == 0


def test_the_application_role_cannot_change_consent_without_a_session_or_the_secret(pg_env, officer, owner_conn):
    """T94: someone holding `kntc_app`'s password cannot set or withdraw a citizen's consent: no UPDATE
    on the consent columns, the officer's door wants a live session of the holding unit, the citizen's
    door the receipt's secret."""
    made = _record(officer(UNIT, ["reception", "handling"]))
    code = made["code"]
    party = officer(UNIT, ["head"]).get(f"/api/cases/{code}").json()["parties"][0]["id"]
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as app:
        for sql, args in (
                ("UPDATE kntc.party SET notify_channels = '{}' WHERE id = %s", (party,)),
                ("SELECT kntc.notify_consent_set(%s, '{}', 'Công dân đề nghị không nhận')", (party,)),
                ("SELECT kntc.notify_consent_apply(%s, '{}', 'citizen', NULL)", (party,)),
                ("UPDATE kntc.notification SET status = 'cancelled' WHERE party_id = %s", (party,))):
            try:
                app.execute(sql, args)
                changed = True
            except psycopg.errors.InsufficientPrivilege:
                changed = False
            assert not changed or _channels(owner_conn, code) == ["email", "sms"], sql
        rows = app.execute("SELECT * FROM kntc.public_notify_choice(%s, %s, '{}')", (code, WRONG)).fetchall()
        assert rows == []
    assert sorted(_channels(owner_conn, code)) == ["email", "sms"]
    queued = owner_conn.execute("SELECT count(*) AS n FROM kntc.notification WHERE party_id = %s AND status = 'queued'",
                                (party,)).fetchone()
    assert queued["n"] == 2


def test_a_forged_channel_list_is_refused_without_changing_anything(server, officer, owner_conn):
    made = _record(officer(UNIT, ["reception", "handling"]))
    citizen = WebUser(server)
    citizen.client.headers["X-Real-IP"] = own_address()
    citizen.get("/lookup")
    r = citizen.post("/lookup/notifications", {"code": made["code"], "secret": made["lookup_secret"],
                                               "channel": ["fax", "sms"]})
    assert r.status_code == 200  # unknown channels are dropped: the choice is SMS only
    assert _channels(owner_conn, made["code"]) == ["sms"]
