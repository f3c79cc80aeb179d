"""Registering connected systems and their credentials (the operator, as the owner role).

A client is bound to one unit and acts as an officer of it: it gets an account of its own
(`x.<name>`), whose roles follow its scopes (submit: reception, handling, resolution; otherwise an
external reader) and whose clearance is the client's. That account has no password anyone could
type (the stored value is no argon2 hash, so every login with it fails); it acts only through
tokens issued to the client's certificate.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import Connection

from core_app.exchange import certs
from core_app.exchange.schemas import SCOPES

NO_PASSWORD = "!exchange-client"  # noqa: S105 - not a hash: every login with it fails


class ClientError(Exception):
    """What the operator asked cannot be done; the message says why."""


def roles_for(scopes: list[str]) -> list[str]:
    return ["reception", "handling", "resolution"] if "submit" in scopes else ["external_reader"]


def check_scopes(scopes: list[str]) -> list[str]:
    wrong = [s for s in scopes if s not in SCOPES]
    if wrong or not scopes:
        raise ClientError(f"scopes must be among {', '.join(SCOPES)} (got {', '.join(scopes) or 'none'})")
    return sorted(set(scopes), key=SCOPES.index)


def _client(conn: Connection[dict[str, Any]], name: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM kntc.exchange_client WHERE name = %s FOR UPDATE", (name,)).fetchone()
    if row is None:
        raise ClientError(f"no client named {name!r} (kntc exchange clients list)")
    return row


def register(
    conn: Connection[dict[str, Any]],
    name: str,
    title: str,
    unit_code: str,
    scopes: list[str],
    clearance: int,
    rate_per_minute: int,
    cert_pem: bytes,
) -> dict[str, Any]:
    scopes = check_scopes(scopes)
    cert = certs.load_pem(cert_pem)
    unit = conn.execute("SELECT id, code FROM kntc.unit WHERE code = %s AND valid_to IS NULL", (unit_code,)).fetchone()
    if unit is None:
        raise ClientError(f"no unit in force with code {unit_code!r}")
    if conn.execute("SELECT 1 FROM kntc.exchange_client WHERE name = %s", (name,)).fetchone():
        raise ClientError(f"a client named {name!r} exists already")
    account = conn.execute(
        "INSERT INTO kntc.account (username, full_name, unit_id, roles, clearance, password_hash) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (f"x.{name}", f"Hệ thống kết nối: {title}"[:200], unit["id"], roles_for(scopes), clearance, NO_PASSWORD),
    ).fetchone()
    assert account is not None
    client = conn.execute(
        "INSERT INTO kntc.exchange_client (name, title, unit_id, account_id, scopes, rate_per_minute) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (name, title, unit["id"], account["id"], scopes, rate_per_minute),
    ).fetchone()
    assert client is not None
    conn.execute("INSERT INTO kntc.exchange_chain (client_id) VALUES (%s)", (client["id"],))
    thumb = _add(conn, client["id"], cert)
    return {
        "name": name,
        "unit": unit["code"],
        "scopes": scopes,
        "clearance": clearance,
        "rate_per_minute": rate_per_minute,
        "thumbprint": thumb,
    }


def _add(conn: Connection[dict[str, Any]], client_id: int, cert: Any) -> str:
    thumb = certs.thumbprint(cert)
    if conn.execute("SELECT 1 FROM kntc.exchange_credential WHERE thumbprint = %s", (bytes.fromhex(thumb),)).fetchone():
        raise ClientError("this certificate is registered already (every credential needs a certificate of its own)")
    conn.execute(
        "INSERT INTO kntc.exchange_credential (client_id, thumbprint, subject) VALUES (%s, %s, %s)",
        (client_id, bytes.fromhex(thumb), cert.subject.rfc4514_string()[:300]),
    )
    return thumb


def add_credential(conn: Connection[dict[str, Any]], name: str, cert_pem: bytes, overlap: timedelta) -> dict[str, Any]:
    """A new certificate; the ones valid today stay valid for `overlap`, then stop (rotation)."""
    client = _client(conn, name)
    if client["revoked_at"]:
        raise ClientError(f"client {name!r} is revoked")
    thumb = _add(conn, client["id"], certs.load_pem(cert_pem))
    ends = datetime.now(UTC) + overlap
    conn.execute(
        "UPDATE kntc.exchange_credential SET not_after = %s WHERE client_id = %s AND thumbprint <> %s "
        "AND revoked_at IS NULL AND (not_after IS NULL OR not_after > %s)",
        (ends, client["id"], bytes.fromhex(thumb), ends),
    )
    return {"name": name, "thumbprint": thumb, "previous_valid_until": ends}


def revoke_credential(conn: Connection[dict[str, Any]], name: str, thumbprint: str, reason: str) -> int:
    """Revoke the credential(s) whose thumbprint starts with `thumbprint`; their tokens stop at once."""
    client = _client(conn, name)
    prefix = thumbprint.lower().replace(":", "")
    if len(prefix) < 8:
        raise ClientError("give at least 8 hex digits of the thumbprint")
    rows = conn.execute(
        "UPDATE kntc.exchange_credential SET revoked_at = now() WHERE client_id = %s AND revoked_at IS NULL "
        "AND encode(thumbprint, 'hex') LIKE %s RETURNING id",
        (client["id"], prefix + "%"),
    ).fetchall()
    if not rows:
        raise ClientError(f"no valid credential of {name!r} with thumbprint {thumbprint}")
    conn.execute("DELETE FROM kntc.exchange_token WHERE credential_id = ANY (%s)", ([r["id"] for r in rows],))
    _note(conn, client, "revoke_credential", reason, {"credentials": [r["id"] for r in rows]})
    return len(rows)


def revoke(conn: Connection[dict[str, Any]], name: str, reason: str) -> None:
    """The client stops at its next request: tokens, credentials and its account."""
    client = _client(conn, name)
    conn.execute(
        "UPDATE kntc.exchange_client SET revoked_at = now(), revoked_reason = %s WHERE id = %s", (reason, client["id"])
    )
    conn.execute("UPDATE kntc.account SET is_active = false WHERE id = %s", (client["account_id"],))
    conn.execute("DELETE FROM kntc.exchange_token WHERE client_id = %s", (client["id"],))
    _note(conn, client, "revoke", reason, {})


def set_scopes(conn: Connection[dict[str, Any]], name: str, scopes: list[str]) -> list[str]:
    """New scopes (and the account's roles with them); tokens issued before stop at once."""
    client = _client(conn, name)
    scopes = check_scopes(scopes)
    conn.execute("UPDATE kntc.exchange_client SET scopes = %s WHERE id = %s", (scopes, client["id"]))
    conn.execute("UPDATE kntc.account SET roles = %s WHERE id = %s", (roles_for(scopes), client["account_id"]))
    conn.execute("DELETE FROM kntc.exchange_token WHERE client_id = %s", (client["id"],))
    return scopes


def listing(conn: Connection[dict[str, Any]]) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT c.name, c.title, u.code AS unit, c.scopes, a.clearance, c.rate_per_minute, c.revoked_at, "
        "       coalesce(json_agg(json_build_object('thumbprint', encode(cr.thumbprint, 'hex'), "
        "                 'not_after', cr.not_after, 'revoked_at', cr.revoked_at) ORDER BY cr.id) "
        "                 FILTER (WHERE cr.id IS NOT NULL), '[]') AS credentials "
        "  FROM kntc.exchange_client c JOIN kntc.unit u ON u.id = c.unit_id "
        "  JOIN kntc.account a ON a.id = c.account_id "
        "  LEFT JOIN kntc.exchange_credential cr ON cr.client_id = c.id "
        " GROUP BY c.id, u.code, a.clearance ORDER BY c.name"
    ).fetchall()


def _note(
    conn: Connection[dict[str, Any]], client: dict[str, Any], action: str, reason: str, detail: dict[str, Any]
) -> None:
    """The operator's change, with its reason, in the access log (covered by the audit chain)."""
    from psycopg.types.json import Jsonb

    conn.execute(
        "INSERT INTO kntc.access_log (kind, account_id, unit_id, client, detail) "
        "VALUES ('account_change', %s, %s, %s, %s)",
        (
            client["account_id"],
            client["unit_id"],
            f"exchange:{client['name']}",
            Jsonb({"action": f"exchange_{action}", "reason": reason, **detail}),
        ),
    )
