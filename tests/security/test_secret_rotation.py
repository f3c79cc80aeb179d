"""A rotation of KNTC_SECRET_KEY (runbooks/accounts.md, "Rotating the secret key") on real PostgreSQL:
what was sealed before it still opens after it (a second factor still verifies, a webhook secret
still signs), open forms stay good, and `kntc accounts reseal` is all or nothing: with a wrong
previous key, or with one value no key opens, it changes nothing and says so in one line.

Threat rows (runbooks/security.md): T100.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from cryptography.exceptions import InvalidTag
from psycopg.rows import dict_row

from core_app import factor, resealing
from core_app.exchange import webhooks
from tests.conftest import Officer, running_server
from tests.security.test_accounts_factor import PASSWORD, account, enrol, login
from tests.web.conftest import WebUser

BIN = Path(sys.executable).parent
REASON = "Đổi khóa bí mật định kỳ theo kế hoạch an ninh"


def kntc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "kntc"), *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)


def ring(current: str, *previous: str) -> dict[str, str]:
    return {"KNTC_SECRET_KEY": current, "KNTC_PREVIOUS_SECRET_KEYS": json.dumps(list(previous))}


def strangers(pg_env: dict[str, str], key: str) -> list[str]:
    """Sealed values already in the database that `key` does not open (left by other tests on purpose)."""
    with psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"], row_factory=dict_row) as conn:
        found = resealing.reseal(conn, key).unreadable
        conn.rollback()
    return found


def test_a_rotated_secret_key_keeps_factors_and_webhooks_and_a_wrong_key_changes_nothing(
        server, owner_conn, pg_env, make_account, tmp_path_factory):
    old, new = pg_env["KNTC_SECRET_KEY"], secrets.token_hex(32)
    # What the runbook says to do with a factor no key opens, for any another test left behind.
    for name in strangers(pg_env, old):
        assert kntc(pg_env, "accounts", "reset-factor", name, "-r", "Đăng ký lại trước khi đổi khóa").returncode == 0, name
    rotating = {**pg_env, **ring(new, old)}
    # An officer enrolled before the rotation; a connected body's webhook secret; an officer whose
    # factor was sealed under a key nobody has any more.
    name = account(owner_conn, ["head"], 1, grace=True)
    totp, _, _ = enrol(server, Officer(server, name, PASSWORD).token, PASSWORD)
    client_account = make_account("X00004", ["reception"])
    client_id = owner_conn.execute(
        "INSERT INTO kntc.exchange_client (name, title, unit_id, account_id, scopes) SELECT %s, 'Hệ thống thử', "
        "a.unit_id, a.id, ARRAY['feed'] FROM kntc.account a WHERE a.username = %s RETURNING id",
        (f"rot-{secrets.token_hex(3)}", client_account)).fetchone()["id"]
    _, raw = webhooks.new_secret()
    owner_conn.execute("INSERT INTO kntc.exchange_webhook (client_id, url, secret) VALUES (%s, %s, %s)",
                       (client_id, "http://127.0.0.1:9/hook", webhooks.seal(old, client_id, raw)))
    # Never delivered to: the suite's webhook deliverers must not spend time on it.
    owner_conn.execute("UPDATE kntc.exchange_webhook SET next_at = 'infinity' WHERE client_id = %s", (client_id,))
    lost = account(owner_conn, ["head"], 1, grace=True)
    lost_id = owner_conn.execute("SELECT id FROM kntc.account WHERE username = %s", (lost,)).fetchone()["id"]
    owner_conn.execute("INSERT INTO kntc.account_factor (account_id, secret) VALUES (%s, %s)",
                       (lost_id, factor.seal(secrets.token_hex(32), "JBSWY3DPEHPK3PXP", lost_id)))

    def sealed() -> tuple[int, bytes, bytes]:
        row = owner_conn.execute(
            "SELECT a.id, f.secret, w.secret AS hook FROM kntc.account_factor f JOIN kntc.account a "
            "ON a.id = f.account_id, kntc.exchange_webhook w WHERE a.username = %s AND w.client_id = %s",
            (name, client_id)).fetchone()
        return row["id"], bytes(row["secret"]), bytes(row["hook"])

    def reseals() -> int:
        return owner_conn.execute("SELECT count(*) AS n FROM kntc.access_log WHERE kind = 'factor_change' "
                                  "AND detail->>'action' = 'reseal'").fetchone()["n"]

    account_id, before, hook_before = sealed()
    logged = reseals()
    try:
        with running_server(rotating, tmp_path_factory.mktemp("rotated") / "server.log", workers=1) as rotated:
            # During the rotation window the new ring opens what the old key sealed.
            assert login(rotated, name, PASSWORD, totp.at(time.time() + 30)).status_code == 200
            # A form opened before the new key was in use is still accepted (400: the form's own
            # errors, not 403 for its token), and a forged token still is not.
            admin = WebUser(server)
            assert admin.login(make_account("T01", ["unit_admin"], clearance=1)).status_code == 303
            admin.get("/app/accounts/import")
            form = {"reason": "Triển khai", "mode": "check", "csrf": admin.csrf}
            assert admin.client.post(f"{rotated}/app/accounts/import", data=form).status_code == 400
            forged = {**form, "csrf": "0" * 64}
            assert admin.client.post(f"{rotated}/app/accounts/import", data=forged).status_code == 403

            # A previous key mistyped: nothing changes, one line, non-zero.
            res = kntc({**pg_env, **ring(new, secrets.token_hex(32))}, "accounts", "reseal", "-r", REASON)
            assert res.returncode == 1 and res.stderr.count("\n") == 1 and "nothing changed" in res.stderr, res
            assert res.stdout == "" and "Traceback" not in res.stderr
            assert sealed() == (account_id, before, hook_before) and reseals() == logged
            # The right ring, but one factor no key opens: still nothing, and that one is named.
            res = kntc(rotating, "accounts", "reseal", "-r", REASON)
            assert res.returncode == 1 and res.stderr.count("\n") == 1 and lost in res.stderr
            assert name not in res.stderr and "reset-factor" in res.stderr
            assert sealed() == (account_id, before, hook_before) and reseals() == logged
            # Without a reason: refused before anything is read.
            assert kntc(rotating, "accounts", "reseal").returncode != 0

            reset = kntc(rotating, "accounts", "reset-factor", lost, "-r", "Khóa cũ đã mất, đăng ký lại")
            assert reset.returncode == 0, reset.stderr
            res = kntc(rotating, "accounts", "reseal", "-r", REASON)
            assert res.returncode == 0, res.stderr
            assert res.stdout.startswith("resealed ") and "second factors" in res.stdout
            _, after, hook_after = sealed()
            assert factor.unseal(new, after, account_id) == totp.secret
            assert webhooks.sealing.unseal(new, webhooks.PURPOSE, hook_after, str(client_id)) == raw
            for key, value, bound, purpose in ((old, after, account_id, factor.SEALED_AS),
                                               (old, hook_after, client_id, webhooks.PURPOSE)):
                with pytest.raises(InvalidTag):  # the old key alone no longer opens them
                    webhooks.sealing.unseal(key, purpose, value, str(bound))
            entry = owner_conn.execute(
                "SELECT detail FROM kntc.access_log WHERE kind = 'factor_change' AND detail->>'action' = 'reseal' "
                "ORDER BY id DESC LIMIT 1").fetchone()["detail"]
            assert entry["reason"] == REASON and entry["resealed"]["second factors"] >= 1
            assert entry["resealed"]["webhook secrets"] >= 1 and reseals() == logged + 1
            # The code of the step just used is spent: forget it rather than wait for the next one.
            owner_conn.execute("UPDATE kntc.account_factor SET last_step = 0 WHERE account_id = %s", (account_id,))
            assert login(rotated, name, PASSWORD, totp.now()).status_code == 200
        # Run again: nothing to do, nothing changes.
        res = kntc(rotating, "accounts", "reseal", "-r", REASON)
        assert res.returncode == 0 and res.stdout.startswith("resealed 0 (nothing)"), res.stdout
        assert sealed()[1:] == (after, hook_after)
    finally:
        # Back under the suite's key, for the tests after this one.
        owner_conn.execute("DELETE FROM kntc.account_factor WHERE account_id = %s", (lost_id,))
        owner_conn.execute("DELETE FROM kntc.exchange_webhook WHERE client_id = %s", (client_id,))
        back = kntc({**pg_env, **ring(old, new)}, "accounts", "reseal", "-r", "Trả lại khóa của bộ kiểm thử")
        assert back.returncode == 0, back.stderr
