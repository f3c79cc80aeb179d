"""Accounts from rosters and their whole life, tried as the administrators and officers who would
abuse them: a bad roster, a roster twice, an administrator granting above their level or outside
their subtree, a disabled officer still holding a session, an officer on an initial password, the
one-time passwords file in other hands, and the record of every change.

Threat rows (runbooks/security.md): T48, T49, T50, T51, T52, T56.
"""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.conftest import Officer, petition_body

PROVINCE, COMMUNE, OTHER_COMMUNE, FAR_COMMUNE = "T01", "X00004", "X00008", "X25747"
STRONG = "ngựa-vằn đi xe đạp 42 lần"


def roster(*rows: str) -> bytes:
    return ("ma_don_vi,ho_ten,ten_dang_nhap,vai_tro,muc_mat,email,dien_thoai\n" + "\n".join(rows) + "\n").encode()


def upload(admin: Officer, data: bytes, name: str = "roster.csv", dry_run: bool = False) -> httpx.Response:
    return admin.client.post("/api/accounts/import", files={"file": (name, data, "text/csv")},
                             data={"reason": "Triển khai tỉnh: danh sách cán bộ", "dry_run": str(dry_run).lower()})


def login(server: str, username: str, password: str, code: str | None = None) -> httpx.Response:
    body = {"username": username, "password": password} | ({"code": code} if code else {})
    return httpx.post(server + "/api/auth/login", json=body, timeout=30)


def credentials(admin: Officer, link: str) -> dict[str, str]:
    r = admin.get(link)
    assert r.status_code == 200, r.text
    lines = r.content.decode("utf-8-sig").strip().splitlines()
    assert lines[0] == "username,full_name,unit_code,initial_password"
    return {line.split(",")[0]: line.split(",")[3] for line in lines[1:]}


def tag() -> str:
    return secrets.token_hex(3)


def test_a_roster_with_one_bad_row_creates_nothing_and_names_the_row(officer, owner_conn):
    admin = officer(PROVINCE, ["unit_admin"], 1)
    t = tag()
    data = roster(f"{COMMUNE},Nguyễn Văn An,an.{t},tiep_dan,0,an.{t}@thanhtra.gov.vn,0912345678",
                  f"{COMMUNE},Trần Thị Bình,binh.{t},xử lý,0,,",
                  f"XKHONGCO,Lê Văn Cường,cuong.{t},handling,0,,",
                  f"{COMMUNE},Phạm Thị Dung,dung.{t},giam_doc,0,khong-phai-email,12",
                  f"{FAR_COMMUNE},Hoàng Văn Em,em.{t},reception,0,,")
    r = upload(admin, data)
    assert r.status_code == 200, r.text
    got = r.json()
    assert not got["ok"] and got["created"] == [] and got["credentials"] is None
    lines = {e["line"] for e in got["errors"]}
    assert lines == {4, 5, 6}, got["errors"]
    by_line = {e["line"]: e["message_en"] for e in got["errors"] if e["line"] != 5}
    assert "XKHONGCO" in by_line[4] and "may not grant" in by_line[6]
    assert {e["message_en"] for e in got["errors"] if e["line"] == 5} >= {"unknown role(s): giam_doc",
                                                                          "e-mail 'khong-phai-email' is malformed"}
    assert owner_conn.execute("SELECT count(*) AS n FROM kntc.account WHERE username LIKE %s",
                              (f"%.{t}",)).fetchone()["n"] == 0


def test_the_same_roster_twice_creates_nothing_the_second_time(officer, owner_conn, server):
    admin = officer(PROVINCE, ["unit_admin"], 1)
    t = tag()
    data = roster(f"{COMMUNE},Nguyễn Văn An {t},,tiep_dan,0,,",
                  f"{COMMUNE},Nguyễn Văn An {t},,xu_ly,0,an2.{t}@thanhtra.gov.vn,",
                  f"{OTHER_COMMUNE},Trần Thị Bình,binh.{t},handling;resolution,0,,+84987654321")
    dry = upload(admin, data, dry_run=True).json()
    assert dry["ok"] and dry["dry_run"] and len(dry["created"]) == 3 and dry["credentials"] is None
    first = upload(admin, data).json()
    assert first["ok"] and len(first["created"]) == 3, first
    names = sorted(c["username"] for c in first["created"])
    # Namesakes in one unit with different contacts are two people: the second gets a number.
    assert names[0].endswith(f".{OTHER_COMMUNE.lower()}") or f"binh.{t}" in names
    generated = [c["username"] for c in first["created"] if c["line"] in (2, 3)]
    assert generated[0].endswith(".x00004") and generated[1] != generated[0]
    passwords = credentials(admin, first["credentials"])
    assert set(passwords) == set(names)
    # Once only.
    assert admin.get(first["credentials"]).status_code == 404
    second = upload(admin, data).json()
    assert second["ok"] and second["created"] == [] and len(second["unchanged"]) == 3, second
    assert owner_conn.execute("SELECT count(*) AS n FROM kntc.account WHERE username = ANY(%s)",
                              (names,)).fetchone()["n"] == 3
    # The new officer's first login opens only the setup.
    r = login(server, f"binh.{t}", passwords[f"binh.{t}"])
    assert r.status_code == 200 and r.json()["setup"]["password_change"] and r.json()["account"] is None


def test_the_passwords_file_is_for_the_importer_alone(officer):
    admin = officer(PROVINCE, ["unit_admin"], 1)
    other_admin = officer(PROVINCE, ["unit_admin"], 1)
    got = upload(admin, roster(f"{COMMUNE},Võ Thị Giang {tag()},,tiep_dan,0,,")).json()
    assert got["ok"] and got["credentials"]
    assert other_admin.get(got["credentials"]).status_code == 404
    assert httpx.get(admin.client.base_url.join(got["credentials"])).status_code == 401
    assert admin.get(got["credentials"]).status_code == 200


def test_an_officer_on_an_initial_password_can_do_nothing_but_change_it(officer, server, pg_env):
    admin = officer(COMMUNE, ["unit_admin"], 0)
    t = tag()
    made = admin.post("/api/accounts", json={"username": f"moi.{t}", "full_name": "Cán bộ mới", "unit": COMMUNE,
                                             "roles": ["reception"], "clearance": 0})
    assert made.status_code == 201, made.text
    initial = made.json()["initial_password"]
    r = login(server, f"moi.{t}", initial)
    assert r.status_code == 200 and r.json()["setup"] == {"password_change": True, "factor_enrolment": False,
                                                          "factor_due_at": None}
    token = {"Authorization": f"Bearer {r.json()['token']}"}
    for method, path in (("GET", "/api/cases"), ("GET", "/api/auth/me"), ("GET", "/api/receptions"),
                         ("POST", "/api/cases"), ("GET", "/api/auth/sessions"), ("GET", "/api/search?q=đất")):
        resp = httpx.request(method, server + path, headers=token, json=petition_body() if method == "POST" else None)
        assert resp.status_code == 403 and resp.json()["error"] == "setup_required", (path, resp.text)
    change = httpx.post(server + "/api/auth/password", headers=token,
                        json={"current_password": initial, "new_password": "Password123"})
    assert change.status_code == 400 and change.json()["error"] == "weak_password"
    change = httpx.post(server + "/api/auth/password", headers=token,
                        json={"current_password": initial, "new_password": f"moi.{t} 2026"})
    assert change.status_code == 400, "the username as the password"
    change = httpx.post(server + "/api/auth/password", headers=token,
                        json={"current_password": "sai-mat-khau", "new_password": STRONG})
    assert change.status_code == 400 and change.json()["error"] == "wrong_password"
    change = httpx.post(server + "/api/auth/password", headers=token,
                        json={"current_password": initial, "new_password": STRONG})
    assert change.status_code == 200 and change.json()["setup"]["password_change"] is False
    assert httpx.get(server + "/api/auth/me", headers=token).status_code == 200
    assert login(server, f"moi.{t}", initial).status_code == 401
    assert login(server, f"moi.{t}", STRONG).json()["setup"]["password_change"] is False


def test_a_disabled_officers_open_session_is_refused_at_once(officer, make_account, server):
    admin = officer(COMMUNE, ["unit_admin"], 0)
    clerk = Officer(server, make_account(COMMUNE, ["reception"]))
    assert clerk.get("/api/cases").status_code == 200
    r = admin.post(f"/api/accounts/{clerk.username}/actions", json={"action": "disable", "reason": "Nghỉ hưu"})
    assert r.status_code == 200 and r.json()["sessions_ended"] >= 1, r.text
    assert clerk.get("/api/cases").status_code == 401
    assert login(server, clerk.username, "Test-password-2026").status_code == 401
    r = admin.post(f"/api/accounts/{clerk.username}/actions", json={"action": "enable", "reason": "Tái tuyển dụng"})
    assert r.status_code == 200
    assert login(server, clerk.username, "Test-password-2026").status_code == 200


def test_an_administrator_cannot_grant_above_their_level_or_outside_their_subtree(officer, make_account, owner_conn):
    admin = officer(COMMUNE, ["unit_admin"], 1)
    clerk = make_account(COMMUNE, ["reception"])
    far = make_account(FAR_COMMUNE, ["reception"])
    neighbour = make_account(OTHER_COMMUNE, ["reception"])
    refused = [
        (clerk, {"action": "set_roles", "roles": ["reception", "head"]}, 403),  # head only below their unit
        (clerk, {"action": "set_roles", "roles": ["sysadmin"]}, 403),
        (clerk, {"action": "set_clearance", "clearance": 2}, 403),  # above their own
        (clerk, {"action": "set_unit", "unit": FAR_COMMUNE}, 403),  # out of their subtree
        (far, {"action": "disable"}, 404),  # not theirs: the same answer as no such account
        (neighbour, {"action": "reset_password"}, 404),
        (admin.username, {"action": "set_clearance", "clearance": 2}, 404),
        ("khong.ton.tai", {"action": "disable"}, 404),
    ]
    for who, body, status in refused:
        r = admin.post(f"/api/accounts/{who}/actions", json=body | {"reason": "Thử vượt quyền"})
        assert r.status_code == status, (who, body, r.text)
        assert r.json()["message"] and r.json()["message_en"]
    rows = owner_conn.execute("SELECT username, roles, clearance, unit_id, is_active FROM kntc.account "
                              "WHERE username = ANY(%s) ORDER BY username", ([clerk, far, neighbour],)).fetchall()
    assert all(r["roles"] == ["reception"] and r["clearance"] == 0 and r["is_active"] for r in rows)
    # Without a reason nothing happens either.
    r = admin.post(f"/api/accounts/{clerk}/actions", json={"action": "disable", "reason": ""})
    assert r.status_code == 422
    # Within their powers: move the clerk between... their own unit only has no sub-unit here, so
    # the province administrator moves an officer between two communes of the province.
    province_admin = officer(PROVINCE, ["unit_admin"], 1)
    r = province_admin.post(f"/api/accounts/{clerk}/actions",
                            json={"action": "set_unit", "unit": OTHER_COMMUNE, "reason": "Điều động công tác"})
    assert r.status_code == 200 and r.json()["after"]["unit"] == OTHER_COMMUNE, r.text
    r = province_admin.post(f"/api/accounts/{clerk}/actions",
                            json={"action": "set_roles", "roles": ["head"], "reason": "Bổ nhiệm thủ trưởng"})
    assert r.status_code == 200


def test_every_change_is_in_the_access_log_and_the_audit_chain(officer, make_account, owner_conn):
    admin = officer(PROVINCE, ["unit_admin"], 1)
    clerk = make_account(COMMUNE, ["reception"])
    actions = [{"action": "set_roles", "roles": ["reception", "handling"]}, {"action": "set_clearance", "clearance": 1},
               {"action": "set_unit", "unit": OTHER_COMMUNE}, {"action": "disable"}, {"action": "enable"},
               {"action": "reset_password"}, {"action": "end_sessions"}]
    for body in actions:
        r = admin.post(f"/api/accounts/{clerk}/actions", json=body | {"reason": f"Lý do {body['action']}"})
        assert r.status_code == 200, (body, r.text)
    log = owner_conn.execute(
        "SELECT l.detail, a.username AS actor FROM kntc.access_log l JOIN kntc.account a ON a.id = l.account_id "
        "WHERE l.kind = 'account_change' AND l.detail->>'target' = %s ORDER BY l.id", (clerk,)).fetchall()
    assert [e["detail"]["action"] for e in log] == [b["action"] for b in actions]
    assert all(e["actor"] == admin.username and e["detail"]["reason"] == f"Lý do {e['detail']['action']}"
               for e in log)
    audited = owner_conn.execute(
        "SELECT count(*) AS n FROM kntc.audit_log WHERE table_name = 'account' AND op = 'UPDATE' "
        "AND row_key = (SELECT id::text FROM kntc.account WHERE username = %s)", (clerk,)).fetchone()["n"]
    assert audited >= 6
    secret_in_audit = owner_conn.execute(
        "SELECT count(*) AS n FROM kntc.audit_log WHERE table_name = 'account' AND (after ? 'password_hash' "
        "OR before ? 'password_hash')").fetchone()["n"]
    assert secret_in_audit == 0


def test_sessions_are_listed_and_ended_by_their_owner_and_administrator(officer, make_account, server):
    admin = officer(COMMUNE, ["unit_admin"], 0)
    name = make_account(COMMUNE, ["handling"])
    laptop, phone = Officer(server, name), Officer(server, name)
    mine = laptop.get("/api/auth/sessions").json()["data"]
    assert len(mine) == 2 and sum(s["current"] for s in mine) == 1
    assert all(len(s["handle"]) == 18 and "token" not in s for s in mine)
    other = next(s for s in mine if not s["current"])
    assert laptop.client.delete(f"/api/auth/sessions/{other['handle']}").status_code == 200
    assert phone.get("/api/cases").status_code == 401
    # Someone else's handle is not theirs to end.
    stranger = officer(COMMUNE, ["handling"])
    handle = laptop.get("/api/auth/sessions").json()["data"][0]["handle"]
    assert stranger.client.delete(f"/api/auth/sessions/{handle}").status_code == 404
    assert laptop.get("/api/cases").status_code == 200
    seen = admin.get(f"/api/accounts/{name}/sessions")
    assert seen.status_code == 200 and len(seen.json()["data"]) == 1
    assert stranger.get(f"/api/accounts/{name}/sessions").status_code == 403
    r = admin.post(f"/api/accounts/{name}/actions", json={"action": "end_sessions", "reason": "Nghi lộ mật khẩu"})
    assert r.status_code == 200 and r.json()["sessions_ended"] == 1
    assert laptop.get("/api/cases").status_code == 401


def test_the_directory_finds_stale_and_initial_accounts_within_the_area_only(officer, owner_conn):
    admin = officer(PROVINCE, ["unit_admin"], 1)
    t = tag()
    got = upload(admin, roster(f"{COMMUNE},Đặng Văn Hải,hai.{t},tiep_dan,0,hai.{t}@thanhtra.gov.vn,")).json()
    assert got["ok"]
    owner_conn.execute("UPDATE kntc.account SET created_at = now() - interval '120 days' WHERE username = %s",
                       (f"hai.{t}",))
    r = admin.get("/api/accounts", params={"q": f"hai.{t}", "initial": "true", "stale_days": 90})
    assert [a["username"] for a in r.json()["data"]] == [f"hai.{t}"]
    assert r.json()["data"][0]["email"] == f"hai.{t}@thanhtra.gov.vn"
    far_admin = officer("T79", ["unit_admin"], 1)
    assert far_admin.get("/api/accounts", params={"q": f"hai.{t}"}).json()["data"] == []


@pytest.mark.parametrize("bad", [b"\x00\x01binary", b"ma_don_vi,ho_ten\nX00004,An\n", "ma_don_vi;ho_ten;vai_tro\n"
                                 "X00004;Nguyễn Văn An;tiep_dan\n".encode("utf-16")])
def test_an_unreadable_roster_is_one_clear_error(officer, bad: bytes):
    admin = officer(PROVINCE, ["unit_admin"], 1)
    r = upload(admin, bad)
    assert r.status_code == 400 and r.json()["error"] == "roster_unreadable" and r.json()["message_en"], r.text


def test_an_officer_cannot_import_or_change_accounts(officer, make_account):
    clerk = officer(COMMUNE, ["reception", "handling", "head"], 1)
    target = make_account(COMMUNE, ["reception"])
    assert upload(clerk, roster(f"{COMMUNE},Kẻ Mạo Danh,,tiep_dan,0,,")).status_code == 403
    r = clerk.post(f"/api/accounts/{target}/actions", json={"action": "disable", "reason": "Không ưa"})
    assert r.status_code == 403

