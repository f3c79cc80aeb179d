"""Officers' search within their scope: every filter, Vietnamese with or without diacritics.

Threat rows (runbooks/security.md): T113.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import petition_body
from tests.dedup.conftest import fill_commune, id_number


def test_search_by_each_filter_within_scope(officer, commune):
    unit, province = commune()
    other, other_province = commune()
    while other_province == province:
        other, other_province = commune()
    clerk = officer(unit, ["reception"])
    idn = id_number()
    r = clerk.post("/api/cases", json=petition_body(
        kind="denunciation", subject="Tố cáo việc lấn chiếm đất công ở xóm Đồng Bằng", respondent="Công ty Hưng Thịnh",
        received_on="2025-09-10",
        parties=[{"role": "denouncer", "full_name": "Bùi Văn Thắng", "id_number": idn, "address_unit": unit}]))
    assert r.status_code == 201, r.text
    code = r.json()["code"]

    def found(who, **params) -> list[str]:
        res = who.get("/api/search", params=params)
        assert res.status_code == 200, res.text
        return [row["code"] for row in res.json()["data"]]

    for params in ({"q": "lấn chiếm đất công"}, {"q": "LAN CHIEM DAT CONG"}, {"q": "xom dong bang"},
                   {"code": code}, {"code": code[:-4]}, {"person": "bui van thang"}, {"person": "Bùi Văn"},
                   {"id_number": idn}, {"respondent": "hung thinh"}, {"unit": unit, "kind": "denunciation"},
                   {"status": "received", "received_from": "2025-09-01", "received_to": "2025-09-30",
                    "q": "đất công"}):
        assert code in found(clerk, **params), params
    assert code not in found(clerk, q="lấn chiếm đất công", received_to="2025-01-01")
    assert code not in found(clerk, kind="complaint", q="đất công")

    province_head = officer(province, ["head"])
    assert code in found(province_head, id_number=idn)
    # A province is tested by its path, a commune by its units: both ways find it, and another
    # province's head, whose area is tested the same way, does not.
    assert code in found(province_head, q="lấn chiếm đất công")
    assert code in found(province_head, q="lấn chiếm đất công", unit=province)
    assert code not in found(officer(other_province, ["head"]), q="lấn chiếm đất công")
    assert code not in found(province_head, q="lấn chiếm đất công", unit=other_province)
    stranger = officer(other, ["reception"])
    assert found(stranger, id_number=idn) == []
    assert code not in found(stranger, q="lấn chiếm đất công")


def test_search_pages_and_refuses_bad_filters(officer, commune):
    unit, _ = commune()
    clerk = officer(unit, ["reception"])
    for i in range(3):
        r = clerk.post("/api/cases", json=petition_body(
            subject=f"Kiến nghị lắp đèn đường tổ {i}", kind="recommendation",
            parties=[{"role": "petitioner", "full_name": "Mai Văn Cường", "address_unit": unit}]))
        assert r.status_code == 201
    first = clerk.get("/api/search", params={"q": "lap den duong", "unit": unit, "per_page": 2}).json()
    second = clerk.get("/api/search", params={"q": "lap den duong", "unit": unit, "per_page": 2,
                                               "after": first["next"]}).json()
    assert len(first["data"]) == 2 and first["has_more"] is True
    assert len(second["data"]) == 1 and second["has_more"] is False
    assert not {r["code"] for r in first["data"]} & {r["code"] for r in second["data"]}
    assert second["next"] is None
    forged = clerk.get("/api/search", params={"q": "lap den duong", "after": "not-a-cursor"})
    assert forged.status_code == 400 and forged.json()["field"] == "after"
    bad = clerk.get("/api/search", params={"id_number": "12345"})
    assert bad.status_code == 422
    assert clerk.get("/api/search", params={"received_from": "not-a-date"}).status_code == 422
    assert clerk.get("/api/search", params={"q": "100%_\\"}).status_code == 200


def test_confidential_denouncer_is_not_found_by_name_by_others(officer, commune):
    unit, _ = commune()
    clerk = officer(unit, ["reception"])
    colleague = officer(unit, ["reception"])
    idn = id_number()
    r = clerk.post("/api/cases", json=petition_body(
        kind="denunciation", denouncer_confidential=True, subject="Tố cáo hành vi nhũng nhiễu",
        parties=[{"role": "denouncer", "full_name": "Quách Thị Kín", "id_number": idn, "address_unit": unit}]))
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    assert [x["code"] for x in clerk.get("/api/search", params={"person": "quach thi kin"}).json()["data"]] == [code]
    assert colleague.get("/api/search", params={"person": "quach thi kin"}).json()["data"] == []
    assert colleague.get("/api/search", params={"id_number": idn}).json()["data"] == []
    assert [x["code"] for x in colleague.get("/api/search", params={"q": "nhung nhieu", "unit": unit}).json()["data"]] \
        == [code]


def crowd(clerk, unit: str, owner_conn: psycopg.Connection, n: int) -> str:
    """A commune with `n` + 1 requests for a birth certificate copy ("... số <i>"), each by its own
    petitioner; returns the code of the first, which the others' codes extend ("<code>-F<i>")."""
    r = clerk.post("/api/cases", json=petition_body(
        subject="Đề nghị cấp bản sao giấy khai sinh số 0", received_on="2025-01-15",
        parties=[{"role": "petitioner", "full_name": "Nguyễn Văn Số 0", "address_unit": unit}]))
    assert r.status_code == 201, r.text
    template = r.json()["code"]
    fill_commune(owner_conn, template, unit, n)
    return template


def test_search_in_a_crowded_commune_and_nationwide(officer, commune, owner_conn):
    """The ways search_ids starts a query: from a full name's few bearers, from a surname's many
    (over 5,000), from a commune's cases, from a code prefix; and the nation without a scope."""
    unit, province = commune()
    clerk = officer(unit, ["reception"])
    template = crowd(clerk, unit, owner_conn, 5200)
    r = clerk.post("/api/cases", json=petition_body(
        subject="Kiến nghị sửa chữa trạm bơm thủy lợi", received_on="2025-02-01",
        parties=[{"role": "petitioner", "full_name": "Nguyễn Văn Sơn Hà", "address_unit": unit}]))
    newest = r.json()["code"]

    def codes(who, **params) -> list[str]:
        res = who.get("/api/search", params={"per_page": 5, **params})
        assert res.status_code == 200, res.text
        return [row["code"] for row in res.json()["data"]]

    assert codes(clerk, person="Nguyễn Văn Số 4711") == [f"{template}-F4711"]
    many = codes(clerk, person="Nguyễn Văn Sơ")  # 5,202 bearers: newest first
    assert many[0] == newest and len(many) == 5
    assert codes(clerk, q="tram bom thuy loi") == [newest]
    by_code = codes(clerk, code=f"{template}-F519")
    assert len(by_code) == 5 and all(c.startswith(f"{template}-F519") for c in by_code)
    centre = officer("VN", ["head"])
    assert newest in codes(centre, q="sửa chữa trạm bơm thủy lợi", unit=unit)
    assert newest in codes(officer(province, ["head"]), person="nguyễn văn sơn hà")
    assert codes(officer(province, ["head"]), unit="X99999999") == []


def test_a_phrase_found_by_its_rare_words_is_found_as_the_substring_it_is(officer, commune, owner_conn):
    """A province head's phrase with a rare whole word between its first and last is found through
    the words' index (migration 0026), and the answers are those of the substring search: a first
    and a last word cut short still match, a hyphenated or punctuated word is matched as written,
    and the same words in another order or joined otherwise do not match."""
    unit, province = commune()
    clerk = officer(unit, ["reception"])
    rare = "zq" + id_number()[-6:]
    r = clerk.post("/api/cases", json=petition_body(
        subject=f"Phản ánh việc san lấp ao {rare} thôn Quỳnh-Đôi, xã Kẻ Sặt", received_on="2025-03-03",
        parties=[{"role": "petitioner", "full_name": "Trần Thị Lụa", "address_unit": unit}]))
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    head = officer(province, ["head"])

    def found(q: str) -> bool:
        res = head.get("/api/search", params={"q": q})
        assert res.status_code == 200, res.text
        return code in [row["code"] for row in res.json()["data"]]

    # The phrases below reach the words' index: their rare word is among the inner ones.
    inner = owner_conn.execute("SELECT kntc.rare_inner_words(%s) AS w", (f"%san lap ao {rare} thon%",)).fetchone()
    assert inner is not None and rare in (inner["w"] or "").split()
    for q in (f"san lap ao {rare} thon", f"n lap ao {rare} th", f"ao {rare} thôn Quỳnh-Đôi, xã",
              f"ÁO {rare} THÔN", f"việc  san lấp ao {rare} thôn"):
        assert found(q), q
    for q in (f"lap ao {rare} thon quynh doi", f"san ao {rare} thon", f"ao {rare}thon", f"lap ao {rare} xa"):
        assert not found(q), q
    # A wildcard typed by the officer is a character, not a wildcard, on either path.
    assert not found(f"san lap % {rare} thon") and not found(f"san lap ao_{rare} thon")


def test_the_app_role_cannot_read_which_words_the_subjects_hold(pg_env):
    """The helper reads the word statistics of every case's subject: only search, as the owner, may."""
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT kntc.rare_inner_words('%a b c%')")


def test_a_communes_phrase_is_read_from_its_cases_rows_not_looked_up_by_id(officer, commune, owner_conn, pg_env):
    """A phrase in a commune starts from the commune's cases: their rows are fetched by the address
    the same statement just read, with no look-up of each id in the primary key (one per case, the
    larger part of such a search in a crowded commune), and the answers are the phrase's, in the
    list's order (newest first, then the latest code)."""
    unit, _ = commune()
    clerk = officer(unit, ["reception"])
    crowd(clerk, unit, owner_conn, 400)
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"]) as conn:
        conn.execute("SELECT set_config('kntc.session_token', %s, true)", (clerk.token,))
        ids = [row[0] for row in conn.execute(
            "SELECT id FROM kntc.search_ids(%s, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 21, NULL, NULL)",
            ("%khai sinh so 17%",))]
        [(by_id,)] = conn.execute("SELECT pg_stat_get_xact_numscans('kntc.case_file_pkey'::regclass)")
        found = conn.execute("SELECT c.received_on, c.code, c.subject FROM unnest(%s::uuid[]) WITH ORDINALITY AS i(id, n) "
                             "JOIN kntc.case_file c ON c.id = i.id ORDER BY i.n", (ids,)).fetchall()
        conn.rollback()
    # "số 17" and "số 170" to "số 179"
    assert len(found) == 11 and all("khai sinh số 17" in subject for _, _, subject in found), found
    assert [(on, code) for on, code, _ in found] == sorted(((on, code) for on, code, _ in found), reverse=True)
    assert by_id == 0
