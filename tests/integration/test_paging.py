"""Lists page by cursor (keyset): following `next` visits every row once, however deep."""

from __future__ import annotations

from tests.conftest import petition_body


def test_following_next_lists_every_case_of_the_unit_once(officer):
    clerk = officer("X25747", ["reception"])
    made = {clerk.post("/api/cases", json=petition_body()).json()["code"] for _ in range(5)}
    seen: list[str] = []
    after = None
    for _ in range(100):
        params = {"scope": "unit", "per_page": 2, **({"after": after} if after else {})}
        page = clerk.get("/api/cases", params=params).json()
        seen += [c["code"] for c in page["data"]]
        after = page["next"]
        if not page["has_more"]:
            assert after is None
            break
    assert len(seen) == len(set(seen)) and made <= set(seen)


def test_following_next_lists_every_reception_once(officer):
    clerk = officer("X25747", ["reception"])
    made = {clerk.post("/api/receptions", json={"visitor_name": f"Khách {i}", "content": "Hỏi về thủ tục."}
                       ).json()["id"] for i in range(5)}
    seen: list[str] = []
    after = None
    for _ in range(100):
        page = clerk.get("/api/receptions", params={"per_page": 2, **({"after": after} if after else {})}).json()
        seen += [r["id"] for r in page["data"]]
        after = page["next"]
        if not page["has_more"]:
            break
    assert len(seen) == len(set(seen)) and made <= {str(s) for s in seen}


def test_a_forged_cursor_is_bad_input(officer):
    clerk = officer("X25747", ["reception"])
    for cursor in ("garbage", "WyJ4Il0", "WyIyMDI2LTAxLTAxIiwibm90LWEtdXVpZCJd"):
        r = clerk.get("/api/receptions", params={"after": cursor})
        assert r.status_code == 400 and r.json()["message_en"], (cursor, r.text)


def test_the_first_page_of_the_units_inbox_is_the_page_any_list_answers(officer):
    """The unit's first page in one status is read in one call with the session and made into JSON by
    the database; it answers what the same list read in a transaction answers (a filter that keeps
    every row sends it that way): the same rows and values, the same `has_more` and `next`, and the
    next page follows on from it."""
    clerk = officer("X25747", ["reception"])
    made = {clerk.post("/api/cases", json=petition_body()).json()["code"] for _ in range(3)}
    for per_page in (2, 200):
        one_call = clerk.get("/api/cases", params={"scope": "unit", "status": "received", "per_page": per_page})
        in_transaction = clerk.get("/api/cases", params={"scope": "unit", "status": "received", "per_page": per_page,
                                                         "received_from": "1900-01-01"})
        assert one_call.status_code == in_transaction.status_code == 200, one_call.text
        assert one_call.headers["content-type"] == "application/json"
        assert one_call.json() == in_transaction.json(), per_page
    first = clerk.get("/api/cases", params={"scope": "unit", "status": "received", "per_page": 2}).json()
    assert first["has_more"] and len(first["data"]) == 2
    rest = clerk.get("/api/cases", params={"scope": "unit", "status": "received", "per_page": 200,
                                           "after": first["next"]}).json()
    codes = [c["code"] for c in first["data"] + rest["data"]]
    assert len(codes) == len(set(codes)) and made <= set(codes)
    # a status nobody's case is in: an empty page, not an error
    empty = clerk.get("/api/cases", params={"scope": "unit", "status": "no-such-status"})
    assert empty.status_code == 200 and empty.json() == {"data": [], "per_page": 50, "has_more": False, "next": None}
