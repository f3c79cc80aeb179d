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
