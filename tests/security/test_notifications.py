"""Attacks on citizens' notifications and the SMS lookup: a forged or replayed gateway callback, codes
and secrets guessed by SMS, another unit's delivery status, a message that would tell what the case
keeps confidential, and the application role used to send, read or stop messages.

Threat rows (runbooks/security.md): T79, T80, T81, T82, T83, T84.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator

import httpx
import orjson
import psycopg
import pytest
from psycopg.rows import dict_row

from core_app.notify import messages
from tests.conftest import act, petition_body
from tests.notify_support import Stack, consenting, notify_stack, wait_for

UNIT, NEIGHBOUR = "X00004", "X00008"
ALL = ["reception", "handling", "resolution", "head"]


@pytest.fixture(scope="module")
def stack(pg_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, make_account: Callable[..., str],
          owner_conn: psycopg.Connection) -> Iterator[Stack]:
    with notify_stack(pg_env, tmp_path_factory.mktemp("notify-sec"), make_account, owner_conn) as s:
        yield s


def _record(o, *parties: dict, **over) -> dict:
    r = o.post("/api/cases", json=petition_body(parties=list(parties), **over))
    assert r.status_code == 201, r.text
    return r.json()


def _as_app(pg_env: dict[str, str], token: str) -> psycopg.Connection:
    conn = psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True)
    conn.execute("SELECT set_config('kntc.session_token', %s, false)", (token,))
    return conn


def _number() -> str:
    return "8491" + str(secrets.randbelow(10**7)).zfill(7)


def _mo(sender: str, text: str) -> bytes:
    return orjson.dumps({"message_id": "mo-" + secrets.token_hex(6), "from": sender, "to": "8077", "text": text})


def _budget(stack: Stack, purpose: str) -> int:
    return stack.owner.execute("SELECT coalesce(sum(hits), 0) AS n FROM kntc.throttle WHERE purpose = %s",
                               (purpose,)).fetchone()["n"]


def test_a_forged_or_unsigned_callback_is_refused_before_any_work(stack: Stack) -> None:
    """T79: anyone who can reach the platform posts a lookup or a delivery report as the gateway."""
    clerk = stack.officer(UNIT, ["reception"])
    made = _record(clerk, consenting())
    body = _mo(_number(), f"KNTC {made['code']} {made['lookup_secret']}")
    spent = _budget(stack, "sms_lookup_sender")
    forged = [
        stack.callback("/api/notify/sms/inbound", body, key="k" * 40),  # a key of one's own
        stack.callback("/api/notify/sms/inbound", body, headers={"webhook-signature": "v1," + "A" * 44}),
        stack.callback("/api/notify/sms/inbound", body, headers={"webhook-signature": ""}),
    ]
    # A genuine signature over another body.
    good = stack.callback("/api/notify/sms/inbound", _mo(_number(), "KNTC X00004-2026-000001 AAAA"), callback_id="x1")
    assert good.status_code == 200
    forged.append(httpx.post(stack.url + "/api/notify/sms/inbound", content=body, timeout=30, headers={
        **{k: v for k, v in good.request.headers.items() if k.startswith("webhook-")},
        "content-type": "application/json"}))
    for r in forged:
        assert r.status_code == 401 and r.json()["error"] == "bad_signature", r.text
        assert "reply" not in r.json()
    assert _budget(stack, "sms_lookup_sender") == spent + 1  # only the genuine one was counted
    report = orjson.dumps({"client_message_id": "00000000-0000-4000-8000-000000000000",
                           "provider_message_id": "sim-x", "status": "failed"})
    assert stack.callback("/api/notify/sms/reports", report, key="k" * 40).status_code == 401


def test_a_recorded_callback_replayed_is_refused(stack: Stack) -> None:
    """T80: whoever recorded a genuine callback (a proxy's log, a capture) posts it again: its id is taken,
    and an old one is outside the 5-minute window."""
    clerk = stack.officer(UNIT, ["reception"])
    made = _record(clerk, consenting())
    body = _mo(_number(), f"KNTC {made['code']} {made['lookup_secret']}")
    first = stack.callback("/api/notify/sms/inbound", body, callback_id="mo-replay-" + made["code"])
    assert first.status_code == 200 and made["code"] in first.json()["reply"]
    again = stack.callback("/api/notify/sms/inbound", body, callback_id="mo-replay-" + made["code"])
    assert again.status_code == 409 and "reply" not in again.json()
    # Well outside the window: a second's margin would be spent by rounding and a slow request.
    old = stack.callback("/api/notify/sms/inbound", body, timestamp=int(time.time()) - 330)
    future = stack.callback("/api/notify/sms/inbound", body, timestamp=int(time.time()) + 330)
    assert old.status_code == future.status_code == 401
    # A delivery report replayed cannot turn a delivered message back into a failed one.
    stack.deliver()
    code = _record(clerk, consenting("sms"))["code"]
    stack.deliver()
    row = wait_for(lambda: next((r for r in stack.rows(code) if r["status"] == "delivered"), None),
                   "the simulator's delivery report")
    failed = orjson.dumps({"client_message_id": str(row["id"]), "provider_message_id": row["provider_id"],
                           "status": "failed"})
    sim_id = "dlr_" + row["provider_id"]  # the id the simulator's genuine report used
    replayed = stack.callback("/api/notify/sms/reports", failed, callback_id=sim_id)
    assert replayed.status_code == 409 and replayed.json()["error"] == "replayed"
    assert stack.rows(code)[0]["status"] == "delivered"


def test_wrong_code_and_wrong_secret_get_one_reply_and_guessing_by_sms_stops(stack: Stack) -> None:
    """T81: a guesser with a phone (or many) enumerates codes or secrets by SMS."""
    clerk = stack.officer(UNIT, ["reception"])
    made = _record(clerk, consenting(), kind="denunciation", subject="Tố cáo cán bộ địa chính CANARYKIND")
    code, secret = made["code"], made["lookup_secret"]
    guesser = _number()
    wrong_secret = stack.text_in(guesser, f"KNTC {code} {secrets.token_hex(12).upper()}")
    unit, year, _ = code.rsplit("-", 2)
    wrong_code = stack.text_in(guesser, f"KNTC {unit}-{year}-999999 {secret}")
    no_code = stack.text_in(guesser, f"tracuu X99999-2026-000001 {secret.lower()}")
    assert wrong_secret["status"] == wrong_code["status"] == no_code["status"] == 200
    assert wrong_secret["reply"] == wrong_code["reply"] == no_code["reply"] == messages.plain(messages.NO_MATCH)
    # The citizen: the status in one message, nothing of the kind or the subject, secret typed any way.
    citizen = _number()
    got = stack.text_in(citizen, f"kntc {code} {secret.replace('-', ' ').lower()}")["reply"]
    assert got.startswith(f"Ho so {code}: Da tiep nhan.") and messages.septets(got) <= 160
    assert "CANARYKIND" not in got and "to cao" not in got.lower()
    assert any(m["text"] == got and m["to"] == citizen for m in stack.sim()["handset"])

    # Failures stop the number (the web lookup's rule, keyed by the number, not the gateway's address) …
    stack.owner.execute("UPDATE kntc.throttle_rule SET max_hits = 2 WHERE purpose = 'lookup_fail'")
    try:
        after = stack.text_in(guesser, f"KNTC {code} {secret}")["reply"]
        other = stack.text_in(_number(), f"KNTC {code} {secret}")["reply"]
    finally:
        stack.owner.execute("UPDATE kntc.throttle_rule SET max_hits = 30 WHERE purpose = 'lookup_fail'")
    assert after.startswith("Qua nhieu lan tra cuu") and other.startswith(f"Ho so {code}")
    # … and every message counts against the number's own budget, whatever it says.
    stack.owner.execute("UPDATE kntc.throttle_rule SET max_hits = 3 WHERE purpose = 'sms_lookup_sender'")
    try:
        spammer = _number()
        replies = [stack.text_in(spammer, "xin chao")["reply"] for _ in range(3)]
        fourth = stack.text_in(spammer, f"KNTC {code} {secret}")["reply"]
    finally:
        stack.owner.execute("UPDATE kntc.throttle_rule SET max_hits = 10 WHERE purpose = 'sms_lookup_sender'")
    assert set(replies) == {messages.plain(messages.SYNTAX)} and fourth.startswith("Qua nhieu lan tra cuu")
    # The log names the outcome and the number's last digits, never the secret nor the number.
    time.sleep(0.5)
    log = stack.log.read_text()
    assert "sms lookup from" in log
    for value in (secret, secret.replace("-", ""), secret.replace("-", " ").lower(), citizen, guesser):
        assert value not in log, f"{value[:6]}… is in the server log"


def test_an_officer_of_another_unit_sees_no_delivery_status(stack: Stack, pg_env: dict[str, str]) -> None:
    """T82: A1 reads whether and when a citizen of another unit was notified (that the case exists)."""
    clerk = stack.officer(UNIT, ["reception"])
    code = _record(clerk, consenting("sms", "email"))["code"]
    case_id = stack.rows(code)[0]["case_id"]
    cleared = stack.officer(UNIT, ALL, clearance=2)
    secret_code = _record(cleared, consenting("sms"), classification=2)["code"]
    secret_id = stack.rows(secret_code)[0]["case_id"]
    outsider = stack.officer(NEIGHBOUR, ["reception", "handling", "head"])
    assert outsider.get(f"/api/cases/{code}").status_code == 404
    assert outsider.get(f"/app/cases/{code}").status_code == 404
    uncleared = stack.officer(UNIT, ALL)
    assert uncleared.get(f"/api/cases/{secret_code}").status_code == 404
    for who, cid in ((outsider, case_id), (uncleared, secret_id)):
        with _as_app(pg_env, who.token) as conn:
            assert conn.execute("SELECT id, status FROM kntc.notification WHERE case_id = %s", (cid,)).fetchall() == []
    mine = clerk.get(f"/api/cases/{code}").json()["notifications"]
    assert [(n["event"], n["channel"]) for n in mine] == [("received", "email"), ("received", "sms")]


def test_no_message_carries_what_the_case_keeps_confidential(stack: Stack, pg_env: dict[str, str]) -> None:
    """T83: a secret case with a protected denouncer who asked for SMS and e-mail. Neither the messages
    (read by the provider, the mail relay, whoever holds the phone), nor the lookup's reply, nor what
    a colleague sees of the delivery, tells the denounced person, the content, the denouncer or the
    case's classified details."""
    tag = secrets.token_hex(3).upper()
    canaries = {
        "subject": f"Tố cáo CANARYSUBJ{tag} nhận hối lộ", "content": f"Nội dung CANARYBODY{tag} chi tiết",
        "respondent": f"Ông CANARYRESP{tag}, cán bộ địa chính", "name": f"Lê Thị Canaryname{tag.lower()}",
        "address": f"Số 9 ngõ CANARYADDR{tag}", "summary": f"Kết luận CANARYSUMM{tag}",
        "published": f"Kết quả CANARYPUBL{tag}", "reason": f"Gia hạn vì CANARYEXT{tag} phức tạp",
    }
    head = stack.officer(UNIT, ALL, clearance=2)
    denouncer = consenting("sms", "email", role="denouncer", full_name=canaries["name"], address=canaries["address"])
    made = _record(head, denouncer, kind="denunciation", classification=2, denouncer_confidential=True,
                   subject=canaries["subject"], content=canaries["content"], respondent=canaries["respondent"])
    code = made["code"]
    act(head, code, "submit")
    act(head, code, "accept")
    act(head, code, "extend", level="complex", note=canaries["reason"], decision_ref="9/QĐ")
    act(head, code, "resolve", summary=canaries["summary"], published_result=canaries["published"])
    stack.deliver()
    rows = stack.rows(code)
    assert {r["event"] for r in rows} == {"received", "accepted", "extended", "resolved"} and len(rows) == 8
    assert all(set(r["facts"]) <= {"code", "unit", "on", "due_on", "step"} for r in rows)
    sms = [m["text"] for m in stack.handset(code)]
    mails = stack.mailbox.to(denouncer["email"])
    assert len(sms) == 4 and len(mails) == 4
    said = sms + [m.as_string() for m in mails] + [m.get_content() for m in mails] + [r["body"] for r in rows]
    said.append(stack.text_in(_number(), f"KNTC {code} {made['lookup_secret']}")["reply"])
    forbidden = [*canaries.values(), denouncer["id_number"], "tố cáo", "Tối mật"]
    for text in said:
        for value in forbidden:
            for form in {value, messages.plain(value)}:
                assert form.lower() not in text.lower(), f"{form!r} in a message: {text[:200]!r}"
    # A colleague cleared for the case but not handling it sees that messages went, not to whom.
    colleague = stack.officer(UNIT, ["handling"], clearance=2)
    shown = colleague.get(f"/api/cases/{code}").json()["notifications"]
    assert len(shown) == 8 and all(n["party_name"] is None for n in shown)
    assert all(not ({"sent_to", "body", "facts", "provider_id", "destination"} & set(n)) for n in shown)
    page = colleague.get(f"/app/cases/{code}").text
    assert canaries["name"] not in page and denouncer["phone"] not in page and denouncer["email"] not in page
    assert "(được bảo vệ)" in page


def test_the_application_role_can_neither_send_read_addresses_nor_stop_a_message(
        stack: Stack, pg_env: dict[str, str]) -> None:
    """T84: A5 with an officer's session queues a message to a number of its choosing, reads where
    messages went and what they said, takes the worker's door, or marks a queued message failed."""
    head = stack.officer(UNIT, ALL)
    code = _record(head, consenting("sms"))["code"]
    row = stack.rows(code)[0]
    with _as_app(pg_env, head.token) as conn:
        for sql, args in (
            ("INSERT INTO kntc.notification (event_id, case_id, party_id, channel, event, facts) "
             "SELECT event_id, case_id, party_id, 'sms', 'resolved', '{}' FROM kntc.notification WHERE id = %s",
             (row["id"],)),
            ("SELECT sent_to FROM kntc.notification WHERE id = %s", (row["id"],)),
            ("SELECT body, facts, provider_id FROM kntc.notification WHERE id = %s", (row["id"],)),
            ("UPDATE kntc.notification SET status = 'failed' WHERE id = %s", (row["id"],)),
            ("SELECT * FROM kntc.notify_claim(10, 60, '{sms,email}')", None),
            ("SELECT kntc.notify_done(%s, 1, 'failed', NULL, NULL, NULL, 'x', NULL, 10)", (row["id"],)),
            ("SELECT * FROM kntc.sms_callback_seen", None),
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql, args)
        # The delivery report's door needs the provider's id, which this role cannot read.
        assert conn.execute("SELECT kntc.notify_report(%s, 'sim-guess', false, 'x') AS known",
                            (row["id"],)).fetchone()["known"] is False
    assert stack.rows(code)[0]["status"] == "queued"
    # The worker's role goes through its functions only, never the table.
    with psycopg.connect(pg_env["KNTC_AUTH_DATABASE_URL"], autocommit=True) as auth, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        auth.execute("SELECT sent_to FROM kntc.notification LIMIT 1")
