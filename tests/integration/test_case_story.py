"""The story an officer lives: reception → handling → acceptance → resolution → closed, through the API."""

from __future__ import annotations

from tests.conftest import petition_body


def test_reception_to_closure_with_deadlines(officer):
    reception = officer("X00004", ["reception"])
    handler = officer("X00004", ["handling"])
    resolver = officer("X00004", ["resolution"])
    head = officer("X00004", ["head"])

    r = reception.post("/api/receptions", json={
        "visitor_name": "Nguyễn Văn An", "visitor_id_number": "001089000123", "people_count": 2,
        "content": "Công dân trình bày việc thu hồi đất", "documents_received": "Đơn khiếu nại, bản sao quyết định"})
    assert r.status_code == 201, r.text
    reception_id = r.json()["id"]

    r = reception.post("/api/cases", json=petition_body(reception_id=reception_id, received_on="2026-01-05"))
    assert r.status_code == 201, r.text
    made = r.json()
    code, version = made["code"], made["version"]
    assert code.startswith("X00004-2026-")
    assert len(made["lookup_secret"].replace("-", "")) == 24

    case = reception.get(f"/api/cases/{code}").json()
    assert case["status"] == "received"
    accept = next(d for d in case["deadlines"] if d["step"] == "accept")
    # Complaints Law art. 27: 10 days from receipt, counted from the next day.
    assert accept["due_on"] == "2026-01-15" and accept["legal_basis"].startswith("Luật Khiếu nại")

    r = reception.post(f"/api/cases/{code}/transitions", json={"action": "submit", "version": version})
    assert r.status_code == 200, r.text
    version = r.json()["version"]

    r = handler.post(f"/api/cases/{code}/transitions", json={"action": "accept", "version": version})
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    version = r.json()["version"]
    case = handler.get(f"/api/cases/{code}").json()
    steps = {d["step"]: d for d in case["deadlines"]}
    assert steps["accept"]["met_on"] is not None
    assert "resolve" in steps and steps["resolve"]["rule_code"] == "KN1-RESOLVE"

    r = resolver.post(f"/api/cases/{code}/transitions", json={"action": "start_verification", "version": version})
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    r = resolver.post(f"/api/cases/{code}/transitions", json={
        "action": "resolve", "version": version, "summary": "Công nhận một phần nội dung khiếu nại",
        "published_result": "Đã ban hành quyết định giải quyết khiếu nại lần đầu"})
    assert r.status_code == 200 and r.json()["status"] == "resolved", r.text
    version = r.json()["version"]

    r = head.post(f"/api/cases/{code}/transitions", json={"action": "close", "version": version})
    assert r.status_code == 200 and r.json()["status"] == "closed", r.text

    case = head.get(f"/api/cases/{code}").json()
    assert [e["action"] for e in case["timeline"]] == ["receive", "submit", "accept", "start_verification",
                                                       "resolve", "close"]
    assert case["petitions"][0]["reception_id"] == reception_id

    # The citizen follows it with the code and secret on the receipt.
    r = head.client.post("/api/lookup", json={"code": code, "secret": made["lookup_secret"].lower()})
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert r.json()["published_result"].startswith("Đã ban hành")


def test_illegal_transition_is_refused_with_reason(officer):
    reception = officer("X00004", ["reception"])
    made = reception.post("/api/cases", json=petition_body()).json()
    r = reception.post(f"/api/cases/{made['code']}/transitions", json={"action": "resolve", "version": 1,
                                                                       "summary": "x"})
    assert r.status_code == 409
    assert r.json()["error"] == "illegal_transition"
    assert "Tiếp nhận" in r.json()["message"] or "tiếp nhận" in r.json()["message"].lower()


def test_role_without_permission_is_refused(officer):
    reception = officer("X00004", ["reception"])
    made = reception.post("/api/cases", json=petition_body()).json()
    reception.post(f"/api/cases/{made['code']}/transitions", json={"action": "submit", "version": 1})
    r = reception.post(f"/api/cases/{made['code']}/transitions", json={"action": "accept", "version": 2})
    assert r.status_code == 403 and r.json()["error"] == "role_not_allowed"
    assert "handling" in r.json()["message_en"]


def test_stale_version_never_overwrites(officer):
    reception = officer("X00004", ["reception", "handling"])
    made = reception.post("/api/cases", json=petition_body()).json()
    code = made["code"]
    first = reception.patch(f"/api/cases/{code}", json={"version": 1, "subject": "Khiếu nại về bồi thường",
                                                         "reason": "sửa tiêu đề"})
    assert first.status_code == 200
    second = reception.patch(f"/api/cases/{code}", json={"version": 1, "subject": "Tiêu đề khác hẳn",
                                                          "reason": "sửa tiêu đề"})
    assert second.status_code == 409 and second.json()["current_version"] == 2
    case = reception.get(f"/api/cases/{code}").json()
    assert case["subject"] == "Khiếu nại về bồi thường"
    edit = next(e for e in case["timeline"] if e["action"] == "edit")
    assert edit["note"] == "sửa tiêu đề" and edit["data"]["after"]["subject"] == "Khiếu nại về bồi thường"


def test_forward_keeps_the_same_case_file(officer):
    sender = officer("X00004", ["reception", "handling"])
    receiver = officer("X00008", ["reception", "handling"])
    made = sender.post("/api/cases", json=petition_body()).json()
    code = made["code"]
    sender.post(f"/api/cases/{code}/transitions", json={"action": "submit", "version": 1})
    r = sender.post(f"/api/cases/{code}/transitions", json={"action": "forward", "version": 2,
                                                             "target_unit": "X00008"})
    assert r.status_code == 200 and r.json()["status"] == "received"
    case = receiver.get(f"/api/cases/{code}").json()
    assert case["code"] == code and case["handling_unit"] == "X00008"
    r = receiver.post(f"/api/cases/{code}/transitions", json={"action": "submit", "version": case["version"]})
    assert r.status_code == 200


def test_extensions_limited_by_law(officer):
    handler = officer("X00004", ["reception", "handling", "head"])
    made = handler.post("/api/cases", json=petition_body(
        kind="denunciation", parties=[{"role": "denouncer", "full_name": "Trần Thị Bình"}])).json()
    code, v = made["code"], 1
    for action in ("submit", "accept"):
        v = handler.post(f"/api/cases/{code}/transitions", json={"action": action, "version": v}).json()["version"]
    # Denunciations Law art. 30: once (30 days) if complex, twice if especially complex, never a third time.
    for level in ("complex", "especially_complex"):
        r = handler.post(f"/api/cases/{code}/transitions", json={
            "action": "extend", "version": v, "level": level, "decision_ref": "12/QĐ-TTr",
            "note": "Vụ việc phức tạp, cần xác minh thêm tại nhiều nơi"})
        assert r.status_code == 200, r.text
        v = r.json()["version"]
    r = handler.post(f"/api/cases/{code}/transitions", json={"action": "extend", "version": v,
                                                              "level": "especially_complex",
                                                              "note": "Lần ba: vẫn chưa xác minh xong"})
    assert r.status_code == 409 and r.json()["error"] == "no_extension_left"


def test_documents_are_stored_with_their_checksum(officer):
    import hashlib

    reception = officer("X00004", ["reception"])
    code = reception.post("/api/cases", json=petition_body()).json()["code"]
    content = "Đơn khiếu nại (bản scan)".encode() * 1000
    r = reception.post(f"/api/cases/{code}/attachments",
                       files={"file": ("don-khieu-nai.pdf", content, "application/pdf")})
    assert r.status_code == 201, r.text
    assert r.json()["sha256"] == hashlib.sha256(content).hexdigest()
    att = reception.get(f"/api/cases/{code}").json()["attachments"][0]
    got = reception.get(f"/api/cases/{code}/attachments/{att['id']}")
    assert got.status_code == 200 and got.content == content
    assert got.headers["x-content-sha256"] == hashlib.sha256(content).hexdigest()
    assert reception.get(f"/api/cases/{code}/attachments/not-a-uuid").status_code == 422
    other = officer("X00008", ["reception"])
    assert other.get(f"/api/cases/{code}/attachments/{att['id']}").status_code == 404


def test_a_second_petition_joins_the_same_case_file(officer):
    reception = officer("X00004", ["reception"])
    code = reception.post("/api/cases", json=petition_body()).json()["code"]
    r = reception.post(f"/api/cases/{code}/petitions", json={"channel": "letter", "content": "Gửi lại đơn lần hai"})
    assert r.status_code == 409 and r.json()["error"] == "duplicate_check_required"
    r = reception.post(f"/api/cases/{code}/petitions", json={"channel": "letter", "content": "Gửi lại đơn lần hai",
                                                             "dedup_check_id": reception.check_for(petition_body())})
    assert r.status_code == 201
    case = reception.get(f"/api/cases/{code}").json()
    assert [p["channel"] for p in case["petitions"]] == ["in_person", "letter"]


def test_overdue_steps_are_listed_per_unit(officer):
    reception = officer("X00004", ["reception"])
    code = reception.post("/api/cases", json=petition_body(received_on="2025-01-02")).json()["code"]
    r = reception.get("/api/deadlines/overdue", params={"unit": "X00004"})
    assert r.status_code == 200
    row = next(d for d in r.json()["data"] if d["code"] == code)
    assert row["step"] == "accept" and row["days_late"] > 300
    assert r.json()["per_unit"]["X00004"] >= 1
