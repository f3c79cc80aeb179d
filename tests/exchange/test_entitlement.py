"""A connected system reads only what an officer of its unit at its clearance may, never a protected
denouncer, and every read is recorded with the client and its stated purpose.

Threat rows: T66, T67, T68, T69.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from connect_client import Connection
from tests.exchange.conftest import Registered, id_number, submission

PURPOSE = "Xác minh đơn TA-2026/15 (verifying our case)"


def case(officer: Any, **over: Any) -> str:
    body = {
        "kind": "complaint",
        "subject": f"Khiếu nại {secrets.token_hex(3)}",
        "content": "Nội dung",
        "channel": "in_person",
        "parties": [{"role": "complainant", "full_name": "Đỗ Thị Hoa", "id_number": id_number()}],
        **over,
    }
    r = officer.post("/api/cases", json=body)
    assert r.status_code == 201, r.text
    return r.json()["code"]


@pytest.fixture(scope="module")
def world(register: Callable[..., Registered], xofficer: Callable[..., Any]) -> dict[str, Any]:
    """A court's system in Hà Nội (clearance 0) and cases it may and may not see."""
    denouncer_id = id_number()
    w: dict[str, Any] = {
        "client": register("T01-TAND"),
        "in_area": case(xofficer("X00004", ["reception"])),
        "other_province": case(xofficer("T79", ["reception"])),
        "secret_in_area": case(
            xofficer("X00004", ["reception"], clearance=2), classification=2, subject="Tố cáo mật về đấu thầu"
        ),
        "denouncer_id": denouncer_id,
        "protected_in_area": case(
            xofficer("X00004", ["reception"]),
            kind="denunciation",
            denouncer_confidential=True,
            subject="Tố cáo chủ tịch phường",
            respondent="Chủ tịch UBND phường",
            parties=[
                {"role": "denouncer", "full_name": "Ngô Văn Tố", "id_number": denouncer_id, "address_unit": "X00004"}
            ],
        ),
    }
    return w


def test_a_client_cannot_fetch_another_units_case_or_classified_content(
    world: dict[str, Any], connect: Callable[..., Connection]
) -> None:
    with connect(world["client"]) as conn:

        def fetch(code: str) -> Any:
            return conn.request("GET", f"/api/v1/cases/{code}", headers={"Purpose": "entitlement test"})

        assert fetch(world["in_area"]).status_code == 200
        nowhere = fetch("X00004-2026-999999")
        for code in (world["other_province"], world["secret_in_area"]):
            r = fetch(code)
            # The same answer as for a code that does not exist: nothing tells that it does.
            assert (r.status_code, r.json()) == (404, nowhere.json())


def test_a_client_cannot_find_another_units_case_or_classified_content_by_search_or_count(
    world: dict[str, Any], connect: Callable[..., Connection]
) -> None:
    with connect(world["client"]) as conn:
        for code in (world["other_province"], world["secret_in_area"]):
            page = conn.search("entitlement test", code=code)
            assert page["data"] == [] and page["has_more"] is False
        secret_words = conn.search("entitlement test", q="đấu thầu", per_page=100)
        assert world["secret_in_area"] not in str(secret_words)
        assert [r["code"] for r in conn.search("entitlement test", code=world["in_area"])["data"]] == [world["in_area"]]


def test_a_protected_denouncer_is_never_shown_even_of_a_case_the_client_submitted(
    world: dict[str, Any], connect: Callable[..., Connection]
) -> None:
    own_denouncer = {
        "role": "denouncer",
        "full_name": "Vũ Thị Kín",
        "id_number": id_number(),
        "address": "Ngõ 7 Kim Mã",
        "address_unit": "X00004",
    }
    item = submission(
        kind="denunciation", denouncer_confidential=True, subject="Tố cáo thẩm phán", parties=[own_denouncer]
    )
    with connect(world["client"]) as conn:
        code = conn.submit(item)["case_code"]
        for c in (code, world["protected_in_area"]):
            got = conn.get_case(c, "entitlement test")
            assert got["protected_parties"] is True
            assert all(p["role"] != "denouncer" for p in got["parties"])
        text = str(conn.get_case(code, "entitlement test")) + str(
            conn.get_case(world["protected_in_area"], "entitlement test")
        )
    for secret in ("Vũ Thị Kín", own_denouncer["id_number"], "Ngõ 7", "Ngô Văn Tố", world["denouncer_id"]):
        assert secret not in text


def test_the_duplicate_check_of_a_submission_does_not_reveal_a_protected_denouncer(
    world: dict[str, Any], connect: Callable[..., Connection]
) -> None:
    """The denounced official's own system submits a petition naming the suspected denouncer's ID."""
    probe = submission(
        parties=[{"role": "petitioner", "full_name": "Người khác", "id_number": world["denouncer_id"]}],
        subject="Kiến nghị về một việc khác hẳn",
        respondent="Không liên quan",
    )
    with connect(world["client"]) as conn:
        answer = conn.submit(probe)
    assert answer["duplicates"]["candidates"] == []
    assert world["protected_in_area"] not in str(answer)


def test_the_feed_holds_only_cases_the_client_is_involved_in_and_may_read(
    world: dict[str, Any], connect: Callable[..., Connection], owner: psycopg.Connection
) -> None:
    with connect(world["client"]) as conn:
        own = conn.submit(submission())["case_code"]
        seen = []
        cursor = None
        while True:
            page = conn.feed_page("entitlement test", cursor, 500)
            seen += [i["case_code"] for i in page["items"]]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
    assert own in seen
    for code in (world["in_area"], world["other_province"], world["secret_in_area"], world["protected_in_area"]):
        assert code not in seen


def test_every_read_states_a_purpose_and_is_recorded_with_the_client(
    world: dict[str, Any], connect: Callable[..., Connection], owner: psycopg.Connection
) -> None:
    client = world["client"]
    with connect(client) as conn:
        refused = conn.request("GET", f"/api/v1/cases/{world['in_area']}")
        assert refused.status_code == 400 and refused.json()["type"] == "urn:kntc:problem:purpose_required"
        conn.get_case(world["in_area"], PURPOSE)
        conn.search(PURPOSE, code=world["in_area"])
    rows = owner.execute(
        "SELECT l.detail->>'what' AS what, l.detail->>'purpose' AS purpose, l.client, c.code "
        "  FROM kntc.access_log l LEFT JOIN kntc.case_file c ON c.id = l.case_id "
        " WHERE l.kind = 'exchange_read' AND l.client = %s AND l.detail->>'purpose' = %s ORDER BY l.id",
        (f"exchange:{client.name}", PURPOSE),
    ).fetchall()
    assert [(r["what"], r["code"]) for r in rows] == [("fetch", world["in_area"]), ("search", world["in_area"])]
