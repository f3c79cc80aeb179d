"""The citizen's consent to notifications on the intake form, and how their delivery stands on the case
file page: queued, then sent and delivered once the worker and the gateway have done their part."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.notify_support import Stack, notify_stack, wait_for
from tests.web.conftest import WebUser

UNIT = "X00004"


@pytest.fixture(scope="module")
def stack(pg_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, make_account: Callable[..., str],
          owner_conn: psycopg.Connection) -> Iterator[Stack]:
    with notify_stack(pg_env, tmp_path_factory.mktemp("notify-web"), make_account, owner_conn) as s:
        yield s


def _user(stack: Stack, roles: list[str]) -> WebUser:
    user = WebUser(stack.url)
    assert user.login(stack.make_account(UNIT, roles)).status_code == 303
    return user


def _form(**over: str) -> dict[str, str]:
    form = {"party_role": "complainant", "party_full_name": "Đỗ Văn Bình",
            "party_id_number": "001090" + str(secrets.randbelow(10**6)).zfill(6), "party_address_unit": UNIT,
            "party_phone": "0912" + str(secrets.randbelow(10**6)).zfill(6),
            "party_email": f"binh.{secrets.token_hex(3)}@example.vn", "kind": "complaint", "channel": "in_person",
            "subject": f"Khiếu nại quyết định xử phạt {secrets.token_hex(2)}", "content": "Nội dung khiếu nại",
            "people_count": "1", "complaint_round": "1", "classification": "0"}
    form.update(over)
    return form


def test_the_intake_form_records_consent_and_the_case_page_shows_delivery(stack: Stack) -> None:
    user = _user(stack, ["reception", "handling", "head"])
    page = user.get("/app/cases/new")
    assert 'id="notify-consent"' in page.text and "Công dân đồng ý nhận thông báo" in page.text
    r = user.record(_form(party_notify_consent="on", party_notify_sms="on", party_notify_email="on"))
    assert r.status_code == 303, r.text
    code = r.headers["location"].rsplit("/", 1)[1]
    case = user.get(f"/app/cases/{code}").text
    assert "nhận thông báo qua thư điện tử, SMS" in case and 'id="notifications"' in case
    assert case.count('class="notification notify-queued"') == 2 and "Chờ gửi" in case

    stack.deliver()
    wait_for(lambda: {r["status"] for r in stack.rows(code)} == {"sent", "delivered"}, "SMS delivered, e-mail sent")
    case = user.get(f"/app/cases/{code}").text
    assert "Đã đến máy" in case and "Đã gửi" in case
    api = user.client.get(f"/api/cases/{code}").json()  # the page's session works for the API too
    assert sorted((n["channel"], n["status"]) for n in api["notifications"]) == [("email", "sent"),
                                                                                  ("sms", "delivered")]


@pytest.mark.parametrize("ticked", [
    {"party_notify_consent": "on"},  # consent, no channel
    {"party_notify_sms": "on"},  # a channel, no consent
    {"party_notify_consent": "on", "party_notify_sms": "on", "party_phone": "024 3825 1234"},  # a landline
])
def test_an_inconsistent_choice_is_shown_at_the_consent_and_nothing_is_recorded(stack: Stack,
                                                                                ticked: dict[str, str]) -> None:
    user = _user(stack, ["reception"])
    user.get("/app/cases/new")
    form = _form(**ticked)
    r = user.post("/app/cases/new", form)
    assert r.status_code == 400 and 'id="err-party_notify_channels"' in r.text
    assert stack.owner.execute("SELECT count(*) AS n FROM kntc.case_file WHERE subject = %s",
                               (form["subject"],)).fetchone()["n"] == 0
