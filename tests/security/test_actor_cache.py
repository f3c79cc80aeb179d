"""The actor looked up once per transaction (kntc.actor_cache) cannot be forged or carried over.

Someone holding the application role's password, with a live session of their own in one ward,
writes the transaction-local copy themselves to widen their scope: another ward, more clearance,
a genuine copy taken from another officer's transaction, or their own from before their clearance
was taken away. Each time the database looks the session up again and shows only what it allows.

Threat rows (runbooks/security.md): T95, T96.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.conftest import petition_body

UNIT = "X00004"     # Phường Ba Đình
OTHER = "X00008"    # Phường Ngọc Hà, a sibling ward: neither sees the other's cases


def recorded(officer, unit: str, classification: int = 0) -> str:
    clerk = officer(unit, ["reception"], classification)
    r = clerk.post("/api/cases", json=petition_body(classification=classification,
                                                     subject="Khiếu nại việc cấp giấy chứng nhận"))
    assert r.status_code == 201, r.text
    return r.json()["code"]


def cache_of(conn: psycopg.Connection) -> str:
    """The sealed copy the first check of this transaction left (the app role may read it)."""
    conn.execute("SELECT kntc.actor()")
    return conn.execute("SELECT current_setting('kntc.actor_cache', true) AS v").fetchone()["v"]


def sees(conn: psycopg.Connection, code: str) -> bool:
    return conn.execute("SELECT count(*) AS n FROM kntc.case_file WHERE code = %s", (code,)).fetchone()["n"] == 1


@pytest.fixture
def app_conn(pg_env):
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as conn:
        yield conn


def test_a_made_up_actor_in_the_transaction_setting_does_not_widen_the_scope(officer, app_conn):
    theirs = recorded(officer, OTHER, 2)
    me = officer(UNIT, ["handling"], 0)
    with app_conn.transaction():
        app_conn.execute("SELECT set_config('kntc.session_token', %s, true)", (me.token,))
        genuine = cache_of(app_conn)
        account, unit_id = genuine.split("#")[0].strip("()").split(",")[:2]
        # The whole country (the root of the unit tree) at the highest clearance, with seals made up.
        for seal in ("0" * 64, genuine.split("#")[1], ""):
            app_conn.execute("SELECT set_config('kntc.actor_cache', %s, true)",
                             (f"({account},{unit_id},u1,u1,{{handling,head}},2)#{seal}",))
            assert not sees(app_conn, theirs)
        assert (app_conn.execute("SELECT (kntc.actor()).clearance AS c").fetchone()["c"]) == 0
    with app_conn.transaction():
        # Without a session the forged copy gives nothing at all.
        app_conn.execute("SELECT set_config('kntc.actor_cache', %s, true)", (genuine,))
        assert app_conn.execute("SELECT count(*) AS n FROM kntc.case_file").fetchone()["n"] == 0


def test_another_officers_genuine_copy_is_refused_in_my_transaction(officer, app_conn):
    theirs = recorded(officer, OTHER)
    other = officer(OTHER, ["handling"], 0)
    me = officer(UNIT, ["handling"], 0)
    with app_conn.transaction():
        app_conn.execute("SELECT set_config('kntc.session_token', %s, true)", (other.token,))
        assert sees(app_conn, theirs)
        stolen = cache_of(app_conn)
        # Same transaction, same backend: only the token differs.
        app_conn.execute("SELECT set_config('kntc.session_token', %s, true)", (me.token,))
        app_conn.execute("SELECT set_config('kntc.actor_cache', %s, true)", (stolen,))
        assert not sees(app_conn, theirs)


def test_a_copy_from_an_earlier_transaction_does_not_outlive_a_clearance_taken_away(officer, app_conn, owner_conn,
                                                                                     pg_env):
    secret = recorded(officer, UNIT, 2)
    me = officer(UNIT, ["handling"], 2)
    with app_conn.transaction():
        app_conn.execute("SELECT set_config('kntc.session_token', %s, true)", (me.token,))
        assert sees(app_conn, secret)
        before = cache_of(app_conn)
    owner_conn.execute("UPDATE kntc.account SET clearance = 0 WHERE username = %s", (me.username,))
    with app_conn.transaction():
        app_conn.execute("SELECT set_config('kntc.session_token', %s, true)", (me.token,))
        app_conn.execute("SELECT set_config('kntc.actor_cache', %s, true)", (before,))
        assert not sees(app_conn, secret)
    # Another connection (another backend) gets nothing from the copy either.
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row) as elsewhere:
        elsewhere.execute("SELECT set_config('kntc.session_token', %s, true)", (me.token,))
        elsewhere.execute("SELECT set_config('kntc.actor_cache', %s, true)", (before,))
        assert not sees(elsewhere, secret)


def test_the_seal_key_is_not_readable_by_the_application_role(app_conn):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute("SELECT key FROM kntc.actor_key")


def test_the_application_role_cannot_have_the_database_seal_an_officer_of_its_choosing(officer, app_conn):
    """kntc.actor_remember() makes a genuine seal: only the schema's own functions may call it."""
    theirs = recorded(officer, OTHER, 2)
    me = officer(UNIT, ["handling"], 0)
    with app_conn.transaction():
        app_conn.execute("SELECT set_config('kntc.session_token', %s, true)", (me.token,))
        mine = cache_of(app_conn).split("#")[0]
        account, unit_id = mine.strip("()").split(",")[:2]
        wider = f"({account},{unit_id},u1,u1,\"{{handling,head}}\",2)"
        with pytest.raises(psycopg.errors.InsufficientPrivilege), app_conn.transaction():
            app_conn.execute("SELECT kntc.actor_remember(%s, %s::kntc.actor)", (me.token, wider))
        assert not sees(app_conn, theirs)


def test_the_officer_sealed_by_the_session_statement_is_the_one_every_later_check_reads(officer, app_conn,
                                                                                       owner_conn):
    """kntc.session_resume() and kntc.actor() seal alike: after the session statement, the transaction's
    checks read its copy and do not look the session up again, so an account deactivated meanwhile
    still acts until its transaction ends (and not in the next one)."""
    mine = recorded(officer, UNIT)
    me = officer(UNIT, ["handling"], 0)
    with app_conn.transaction():
        state = app_conn.execute("SELECT state FROM kntc.session_resume(%s, 1800)", (me.token,)).fetchone()
        owner_conn.execute("UPDATE kntc.account SET is_active = false WHERE username = %s", (me.username,))
        assert state["state"] == "live"
        assert sees(app_conn, mine)
    with app_conn.transaction():
        state = app_conn.execute("SELECT state FROM kntc.session_resume(%s, 1800)", (me.token,)).fetchone()
        assert state["state"] == "expired"
        assert not sees(app_conn, mine)
