"""Citizens' notifications through the outbox: queued in the transaction of the change (or not at all),
sent by the worker to the SMS gateway simulator and a real SMTP server, retried with back-off, and
sent exactly once even when the worker is killed while sending."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from core_app.notify import messages
from tests.conftest import act, petition_body
from tests.notify_support import SENDER, Stack, consenting, notify_stack, wait_for

UNIT = "X00004"
ALL = ["reception", "handling", "resolution", "head"]


@pytest.fixture(scope="module")
def stack(pg_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, make_account: Callable[..., str],
          owner_conn: psycopg.Connection) -> Iterator[Stack]:
    with notify_stack(pg_env, tmp_path_factory.mktemp("notify"), make_account, owner_conn) as s:
        yield s


def _record(o, *parties: dict, **over) -> str:
    r = o.post("/api/cases", json=petition_body(parties=list(parties), **over))
    assert r.status_code == 201, r.text
    return r.json()["code"]


def test_each_event_the_citizen_cares_about_is_sent_once_by_each_chosen_channel(stack: Stack) -> None:
    head = stack.officer(UNIT, ALL)
    party = consenting("sms", "email")
    code = _record(head, party, kind="denunciation")
    rows = stack.rows(code)
    assert [(r["event"], r["channel"], r["status"]) for r in rows] == [("received", "email", "queued"),
                                                                       ("received", "sms", "queued")]
    act(head, code, "submit")  # petition handling begins: nothing the citizen is told
    act(head, code, "extend", step="accept", note="Cần xác minh thêm điều kiện thụ lý", decision_ref="3/QĐ")
    act(head, code, "accept")
    act(head, code, "resolve", summary="Kết luận: tố cáo đúng một phần")
    assert [r["event"] for r in stack.rows(code) if r["channel"] == "sms"] == [
        "received", "extended", "accepted", "resolved"]

    stack.deliver()
    rows = stack.rows(code)
    assert {r["status"] for r in rows} <= {"sent", "delivered"} and all(r["attempts"] == 1 for r in rows)
    number = messages.sms_number(party["phone"])
    event_of = {str(r["id"]): r["event"] for r in rows}
    texts = {event_of[m["client_message_id"]]: m["text"] for m in stack.handset(code)}
    assert len(stack.handset(code)) == 4 and all(m["to"] == number and m["from"] == "TTCP"
                                                 for m in stack.handset(code))
    assert texts["received"].startswith(f"Ho so {code} da duoc tiep nhan ngay ")
    assert "gia han thoi han thu ly den ngay" in texts["extended"]
    assert all(messages.septets(t) <= 160 for t in texts.values()), texts
    mails = stack.mailbox.to(party["email"])
    assert len(mails) == 4 and {m["From"] for m in mails} == {SENDER}
    by_id = {str(r["id"]): r for r in rows}
    for m in mails:
        row = by_id[m["Message-ID"].strip("<>").split("@")[0]]
        assert row["channel"] == "email" and row["status"] == "sent" and row["sent_to"] == party["email"]
    assert "đã được thụ lý giải quyết" in next(m for m in mails if "thụ lý" in m["Subject"]).get_content()

    # The simulator reports delivery; nothing is sent twice by a second worker's round.
    wait_for(lambda: all(r["status"] == "delivered" for r in stack.rows(code) if r["channel"] == "sms"),
             "every SMS reported delivered")
    stack.deliver()
    assert len(stack.handset(code)) == 4 and len(stack.mailbox.to(party["email"])) == 4


def test_a_transfer_tells_the_new_unit_and_a_second_round_is_a_new_receipt(stack: Stack) -> None:
    head = stack.officer(UNIT, ALL)
    code = _record(head, consenting("sms"))
    act(head, code, "submit")
    act(head, code, "forward", target_unit="T01-TT")
    rows = stack.rows(code)
    assert [r["event"] for r in rows] == ["received", "transferred"]
    unit = stack.owner.execute("SELECT name FROM kntc.unit WHERE code = 'T01-TT'").fetchone()["name"]
    assert rows[1]["facts"]["unit"] == unit and set(rows[1]["facts"]) == {"code", "unit", "on"}


def test_no_consent_or_a_channel_not_chosen_queues_nothing_for_it(stack: Stack) -> None:
    head = stack.officer(UNIT, ALL)
    silent = _record(head, consenting())  # phone and e-mail given, no consent
    act(head, silent, "submit")
    act(head, silent, "accept")
    assert stack.rows(silent) == []
    sms_only = _record(head, consenting("sms"))
    act(head, sms_only, "submit")
    act(head, sms_only, "accept")
    assert {r["channel"] for r in stack.rows(sms_only)} == {"sms"}
    # Consent without a channel, a channel without consent, SMS without a mobile number: refused, clearly.
    for party, field in ((consenting(notify_channels=[], notify_consent=True), "notify_channels"),
                         (consenting(notify_channels=["email"], notify_consent=False), "notify_channels"),
                         (consenting("sms", phone="024 3825 1234"), "notify_channels")):
        r = head.post("/api/cases", json=petition_body(parties=[party]))
        assert r.status_code == 422 and field in r.text, r.text
    # Withdrawn before it was sent (the database's own record of consent): cancelled, not sent.
    withdrawn = _record(head, consenting("sms"))
    stack.owner.execute("UPDATE kntc.party p SET notify_channels = '{}' FROM kntc.case_file c "
                        "WHERE c.id = p.case_id AND c.code = %s", (withdrawn,))
    stack.deliver()
    assert [r["status"] for r in stack.rows(withdrawn)] == ["cancelled"] and stack.handset(withdrawn) == []


def test_consent_is_stamped_by_the_database_with_the_time_and_the_officer(stack: Stack) -> None:
    clerk = stack.officer(UNIT, ["reception"])
    code = _record(clerk, consenting("sms", "email"))
    row = stack.owner.execute(
        "SELECT p.notify_channels, p.notify_consent_at, a.username FROM kntc.party p "
        "JOIN kntc.case_file c ON c.id = p.case_id JOIN kntc.account a ON a.id = p.notify_consent_by "
        "WHERE c.code = %s", (code,)).fetchone()
    assert row["notify_channels"] == ["email", "sms"] and row["username"] == clerk.username
    party = clerk.get(f"/api/cases/{code}").json()["parties"][0]
    assert party["notify_channels"] == ["email", "sms"] and party["notify_consent_at"]


def test_a_change_that_rolls_back_queues_nothing(stack: Stack, pg_env: dict[str, str]) -> None:
    head = stack.officer(UNIT, ALL)
    code = _record(head, consenting("sms", "email"))
    act(head, code, "submit")
    before = len(stack.rows(code))
    # The application's own statements for an acceptance, as the application role in the officer's
    # session: the outbox rows exist inside the transaction, and not after it rolls back.
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row) as conn:
        conn.execute("SELECT set_config('kntc.session_token', %s, false)", (head.token,))
        case = conn.execute("SELECT id FROM kntc.case_file WHERE code = %s", (code,)).fetchone()
        conn.execute("UPDATE kntc.case_file SET status = 'accepted', accepted_on = current_date, "
                     "version = version + 1 WHERE id = %s", (case["id"],))
        conn.execute("INSERT INTO kntc.case_event (case_id, actor_id, unit_id, action, from_status, to_status) "
                     "VALUES (%s, %s, %s, 'accept', 'in_handling', 'accepted')",
                     (case["id"], head.account["account_id"], head.account["unit_id"]))
        inside = conn.execute("SELECT count(id) AS n FROM kntc.notification WHERE case_id = %s AND event = 'accepted'",
                              (case["id"],)).fetchone()["n"]
        conn.rollback()
    assert inside == 2
    assert len(stack.rows(code)) == before
    # A refused action writes nothing either.
    act(head, code, "resolve", 409, summary="Chưa thụ lý thì chưa giải quyết")
    assert len(stack.rows(code)) == before


def test_a_failing_gateway_is_retried_with_back_off_and_a_refused_number_is_not(stack: Stack) -> None:
    head = stack.officer(UNIT, ALL)
    stack.deliver()  # what other tests left queued goes first: the failures below are this case's
    code = _record(head, consenting("sms"))
    stack.behave(fail=[503, 503])
    stack.deliver()
    row = stack.rows(code)[0]
    assert (row["status"], row["attempts"], row["last_error"]) == ("queued", 1, "http_503_simulated_failure")
    assert 25 <= row["wait_s"] <= 35, row["wait_s"]  # 30 s, then 60 s, 2 min … at most an hour
    stack.due_now(code)
    stack.deliver()
    row = stack.rows(code)[0]
    assert (row["status"], row["attempts"]) == ("queued", 2) and 55 <= row["wait_s"] <= 65, row["wait_s"]
    stack.due_now(code)
    stack.deliver()
    assert [r["status"] for r in stack.rows(code)] in (["sent"], ["delivered"])
    assert len(stack.handset(code)) == 1
    # The provider says the number cannot be served: no retry.
    refused = _record(head, consenting("sms"))
    stack.behave(fail=[422])
    stack.deliver()
    row = stack.rows(refused)[0]
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 1, "http_422_simulated_failure")
    # Down for good: given up after the configured attempts.
    given_up = _record(head, consenting("sms"))
    stack.behave(fail=[500] * 3)
    for _ in range(3):
        stack.due_now(given_up)
        stack.deliver(env={"KNTC_NOTIFY_MAX_ATTEMPTS": "3"})
    row = stack.rows(given_up)[0]
    assert (row["status"], row["attempts"]) == ("failed", 3) and stack.handset(given_up) == []


def test_a_slow_gateway_is_left_and_retried_and_the_phone_still_gets_one_message(stack: Stack) -> None:
    head = stack.officer(UNIT, ALL)
    stack.deliver()
    code = _record(head, consenting("sms"))
    stack.behave(delay_s=11)  # past the worker's 10 s: taken by the provider, answer lost
    try:
        stack.deliver()
    finally:
        stack.behave(delay_s=0)
    row = stack.rows(code)[0]
    assert (row["status"], row["last_error"]) == ("queued", "gateway_timeout")
    stack.due_now(code)
    stack.deliver()
    assert stack.rows(code)[0]["status"] in ("sent", "delivered")
    requests = [r for r in stack.sim()["requests"] if r["client_message_id"] == str(row["id"])]
    assert len(requests) == 2 and len(stack.handset(code)) == 1


def test_an_sms_is_sent_exactly_once_when_the_worker_is_killed_while_sending(stack: Stack, tmp_path: Path) -> None:
    head = stack.officer(UNIT, ALL)
    stack.deliver()
    code = _record(head, consenting("sms"))
    row_id = str(stack.rows(code)[0]["id"])
    stack.behave(delay_s=60)
    worker = stack.start_worker("--lease-seconds", "5", log=tmp_path / "worker.log")
    try:
        # The provider has taken the message (it is on the phone); the worker waits for the answer.
        wait_for(lambda: stack.handset(code), "the gateway took the message", 60)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        stack.behave(delay_s=0)
    row = stack.rows(code)[0]
    assert (row["status"], row["attempts"]) == ("queued", 1)  # never recorded: the worker died first
    # Its lease runs out; the next worker sends it again under the same id.
    wait_for(lambda: stack.owner.execute("SELECT next_at <= now() AS due FROM kntc.notification WHERE id = %s",
                                         (row_id,)).fetchone()["due"], "the lease ran out", 15)
    stack.deliver()
    row = stack.rows(code)[0]
    assert row["status"] in ("sent", "delivered") and row["attempts"] == 2
    requests = [r for r in stack.sim()["requests"] if r["client_message_id"] == row_id]
    assert len(requests) == 2  # sent twice to the gateway …
    assert len(stack.handset(code)) == 1  # … and once to the phone


def test_an_email_resent_after_the_worker_was_killed_keeps_its_message_id(stack: Stack, tmp_path: Path) -> None:
    """SMTP cannot promise once (runbooks/sms-gateway.md): the server had the message when the worker
    died, so it comes again; both copies carry one Message-ID, by which a mail client drops the second."""
    head = stack.officer(UNIT, ALL)
    stack.deliver()
    party = consenting("email")
    code = _record(head, party)
    stack.mailbox.delay_s = 60
    worker = stack.start_worker("--lease-seconds", "5", log=tmp_path / "worker.log")
    try:
        wait_for(lambda: stack.mailbox.to(party["email"]), "the SMTP server took the message", 60)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        stack.mailbox.delay_s = 0
    wait_for(lambda: stack.owner.execute(
        "SELECT bool_and(n.next_at <= now()) AS due FROM kntc.notification n JOIN kntc.case_file c "
        "ON c.id = n.case_id WHERE c.code = %s", (code,)).fetchone()["due"], "the lease ran out", 15)
    stack.deliver()
    copies = stack.mailbox.to(party["email"])
    row = stack.rows(code)[0]
    assert row["status"] == "sent" and len(copies) == 2
    assert {m["Message-ID"] for m in copies} == {f"<{row['id']}@kntc.test>"}
