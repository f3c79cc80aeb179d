"""The intake form records a petition only after the duplicate check is shown and decided: a new
matter, or linked to the case it duplicates (also from the case page)."""

from __future__ import annotations

import re
import secrets

from tests.dedup.conftest import id_number


def cases_with(owner_conn, subject: str) -> int:
    return owner_conn.execute("SELECT count(*) AS n FROM kntc.case_file WHERE subject = %s", (subject,)).fetchone()["n"]


def test_the_web_form_shows_the_check_before_anything_is_recorded_and_links(web_officer, owner_conn):
    unit = "X00004"
    user = web_officer(unit, ["reception"])
    idn = id_number()
    subject = f"Tố cáo cán bộ địa chính thu tiền sai quy định {secrets.token_hex(2)}"
    form = {"party_role": "denouncer", "party_full_name": "Mạc Thị Nga", "party_id_number": idn,
            "party_address_unit": unit, "kind": "denunciation", "channel": "letter", "subject": subject,
            "content": "Nội dung tố cáo", "people_count": "1", "complaint_round": "1", "classification": "0"}
    user.get("/app/cases/new")
    first = user.record(form)
    assert first.status_code == 303
    code = first.headers["location"].rsplit("/", 1)[1]

    user.get("/app/cases/new")
    page = user.post("/app/cases/new", {**form, "content": "Gửi lại đơn tố cáo lần hai"})
    assert page.status_code == 200 and 'id="candidates"' in page.text and code in page.text
    assert "cùng số định danh cá nhân" in page.text
    assert cases_with(owner_conn, subject) == 1  # the check recorded nothing yet
    check_id = re.search(r'name="dedup_check_id" value="([^"]+)"', page.text).group(1)
    r = user.post("/app/cases/new", {**form, "content": "Gửi lại đơn tố cáo lần hai", "dedup_check_id": check_id,
                                     "link_case": code})
    assert r.status_code == 303 and r.headers["location"] == f"/app/cases/{code}#petitions"
    assert cases_with(owner_conn, subject) == 1
    case = user.get(f"/app/cases/{code}")
    assert "Gửi lại đơn tố cáo lần hai" in case.text and "gộp vào hồ sơ này" in case.text
    # The case page's own "add a petition" runs the check too and keeps the link as the decision.
    r = user.post(f"/app/cases/{code}/petitions", {"channel": "phone", "content": "Gọi điện nhắc lại", "people_count": "1"})
    assert r.status_code == 303
    decisions = owner_conn.execute(
        "SELECT d.decision FROM kntc.dedup_decision d JOIN kntc.case_file c ON c.id = d.case_id WHERE c.code = %s "
        "ORDER BY d.decided_at", (code,)).fetchall()
    assert [d["decision"] for d in decisions] == ["new", "linked", "linked"]
