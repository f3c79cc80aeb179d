"""A roster checked in the administrator's pages and imported without a second upload: only the
session that checked it imports it, only within 30 minutes, and only the very bytes it checked.

Tried as another administrator of the same province, as the same administrator in another login
session, after the kept file expired, after someone writing to the database altered it or moved it
to another administrator, and as someone holding the application role's password.

Threat rows (runbooks/security.md): T99.
"""

from __future__ import annotations

import re
import secrets

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.web.conftest import WebUser

HEADER = "ma_don_vi,ho_ten,ten_dang_nhap,vai_tro,muc_mat,email,dien_thoai\n"
REASON = "Triển khai: danh sách cán bộ đợt 2"
HANDLE = re.compile(r'name="checked" value="([0-9a-f-]{36})"')
DIGEST = re.compile(r'id="import-sha256">([0-9a-f]{64})<')


def roster(tag: str) -> bytes:
    return (HEADER + f"X00004,Trần Văn Bình,binh.{tag},tiep_dan,0,,\n"
            f"X00008,Đỗ Thị Hoa,hoa.{tag},handling,0,,\n").encode()


def admin_session(server: str, username: str) -> WebUser:
    user = WebUser(server)
    assert user.login(username).status_code == 303
    user.get("/app/accounts/import")
    return user


def check(user: WebUser, data: bytes) -> tuple[str, str]:
    """Check a file; (the handle of the kept file, the digest the page shows)."""
    r = user.post("/app/accounts/import", {"reason": REASON, "mode": "check"},
                  files={"file": ("dot-2.csv", data, "text/csv")})
    assert r.status_code == 200 and 'id="import-kept"' in r.text, r.text[-600:]
    return HANDLE.search(r.text).group(1), DIGEST.search(r.text).group(1)


def import_kept(user: WebUser, handle: str):
    return user.post("/app/accounts/import", {"reason": REASON, "mode": "import", "checked": handle})


def created(owner_conn: psycopg.Connection, tag: str) -> int:
    return owner_conn.execute("SELECT count(*) AS n FROM kntc.account WHERE username LIKE %s",
                              (f"%.{tag}",)).fetchone()["n"]


def file_error(r) -> str:
    return r.text.split('id="err-file"')[1].split("</")[0] if 'id="err-file"' in r.text else ""


@pytest.fixture
def admin(server, make_account) -> str:
    return make_account("T01", ["unit_admin"], clearance=1)


def test_only_the_session_that_checked_a_file_imports_it(server, make_account, owner_conn, admin):
    tag = secrets.token_hex(3)
    mine = admin_session(server, admin)
    handle, digest = check(mine, roster(tag))
    # Another administrator of the same province: as if no file were kept, and it stays kept.
    other = admin_session(server, make_account("T01", ["unit_admin"], clearance=1))
    r = import_kept(other, handle)
    assert r.status_code == 400 and "không phải tệp anh/chị kiểm tra" in file_error(r)
    # The same administrator logged in elsewhere: told so, and it stays kept for the first session.
    elsewhere = admin_session(server, admin)
    r = import_kept(elsewhere, handle)
    assert r.status_code == 400 and "phiên đăng nhập khác" in file_error(r)
    # An officer who is not an administrator does not reach the page.
    clerk = admin_session(server, make_account("X00004", ["reception"]))
    assert import_kept(clerk, handle).status_code == 403
    assert created(owner_conn, tag) == 0
    r = import_kept(mine, handle)
    assert r.status_code == 200 and 'id="import-done"' in r.text and created(owner_conn, tag) == 2
    # Exactly the bytes checked: the page and the access log name the same digest.
    assert DIGEST.search(r.text).group(1) == digest
    logged = owner_conn.execute(
        "SELECT detail FROM kntc.access_log WHERE kind = 'account_change' AND detail->>'action' = 'import' "
        "AND detail->>'file_sha256' = %s", (digest,)).fetchall()
    assert len(logged) == 1 and logged[0]["detail"]["reason"] == REASON
    # Once.
    r = import_kept(mine, handle)
    assert r.status_code == 400 and "đã nhập rồi" in file_error(r)


def test_an_expired_kept_file_is_refused_and_forgotten(server, owner_conn, admin):
    tag = secrets.token_hex(3)
    user = admin_session(server, admin)
    handle, _ = check(user, roster(tag))
    owner_conn.execute("UPDATE kntc.roster_checked SET expires_at = now() - interval '1 second' WHERE id = %s",
                       (handle,))
    r = import_kept(user, handle)
    assert r.status_code == 400 and "quá 30 phút" in file_error(r) and created(owner_conn, tag) == 0
    assert owner_conn.execute("SELECT count(*) AS n FROM kntc.roster_checked WHERE id = %s",
                              (handle,)).fetchone()["n"] == 0


@pytest.mark.parametrize("alteration", ["content", "digest", "moved"])
def test_a_kept_file_altered_in_the_database_creates_nothing(server, make_account, owner_conn, admin,
                                                             alteration):
    tag = secrets.token_hex(3)
    user = admin_session(server, admin)
    handle, _ = check(user, roster(tag))
    if alteration == "content":  # one bit of the sealed content
        owner_conn.execute("UPDATE kntc.roster_checked SET sealed = set_byte(sealed, 40, get_byte(sealed, 40) # 1) "
                           "WHERE id = %s", (handle,))
    elif alteration == "digest":  # the digest of another file beside the content checked
        owner_conn.execute("UPDATE kntc.roster_checked SET file_sha256 = encode(sha256('x'), 'hex') WHERE id = %s",
                           (handle,))
    else:  # another administrator's kept file put under this one's row
        other = admin_session(server, make_account("T01", ["unit_admin"], clearance=1))
        theirs, _ = check(other, roster(secrets.token_hex(3)))
        owner_conn.execute("UPDATE kntc.roster_checked r SET sealed = o.sealed, file_sha256 = o.file_sha256 "
                           "FROM kntc.roster_checked o WHERE r.id = %s AND o.id = %s", (handle, theirs))
    r = import_kept(user, handle)
    assert r.status_code == 400 and "đã bị thay đổi" in file_error(r), r.text[-800:]
    assert created(owner_conn, tag) == 0


def test_the_application_role_neither_reads_nor_takes_a_kept_file(server, pg_env, owner_conn, admin):
    user = admin_session(server, admin)
    handle, _ = check(user, roster(secrets.token_hex(3)))
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT * FROM kntc.roster_checked").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT * FROM kntc.roster_take(%s)", (handle,)).fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT * FROM kntc.roster_keep(encode(sha256('x'), 'hex'), 'x.csv', 'x')").fetchall()
    # Still kept for its session.
    assert owner_conn.execute("SELECT count(*) AS n FROM kntc.roster_checked WHERE id = %s",
                              (handle,)).fetchone()["n"] == 1
