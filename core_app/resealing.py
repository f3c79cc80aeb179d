"""Everything the database keeps sealed (core_app.sealing), sealed again under the ring's first key:
the last step of a rotation of KNTC_SECRET_KEY (runbooks/accounts.md, "Rotating the secret key").

All or nothing, in the caller's transaction: when one sealed value opens with no key of the ring
(the previous key was left out, or mistyped), nothing is changed and every such value is named.
A value already sealed under the first key is left as it is, so running it again changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from psycopg import Connection
from psycopg.sql import SQL, Identifier

from core_app import sealing


@dataclass(frozen=True)
class Place:
    """A table's sealed columns: `select` gives `key` (the row), `bound` (what the seal is bound to),
    `name` (what to tell the operator) and the columns; `purposes` are tried in turn (an older row
    may have been sealed for another)."""

    label: str
    table: str
    key_column: str
    columns: tuple[str, ...]
    purposes: tuple[str, ...]
    select: str


PLACES = (
    Place("second factors", "account_factor", "account_id", ("secret", "pending_secret"), ("totp secret",),
          "SELECT f.account_id AS key, f.account_id::text AS bound, a.username AS name, f.secret, f.pending_secret "
          "FROM kntc.account_factor f JOIN kntc.account a ON a.id = f.account_id "
          "ORDER BY f.account_id FOR UPDATE OF f"),
    Place("webhook secrets", "exchange_webhook", "client_id", ("secret",), ("sealed webhook secret",),
          "SELECT w.client_id AS key, w.client_id::text AS bound, 'client ' || c.name AS name, w.secret "
          "FROM kntc.exchange_webhook w JOIN kntc.exchange_client c ON c.id = w.client_id "
          "ORDER BY w.client_id FOR UPDATE OF w"),
    # One-time downloads of initial passwords (and, before the kept rosters had their own table, a
    # checked roster): a day at most; an expired one is no longer offered, so it is left alone.
    Place("initial-password downloads", "roster_delivery", "id", ("sealed",),
          ("roster credentials", "checked roster"),
          "SELECT d.id AS key, d.account_id::text AS bound, 'download ' || d.id AS name, d.sealed "
          "FROM kntc.roster_delivery d WHERE d.expires_at > now() ORDER BY d.id FOR UPDATE"),
    Place("checked rosters", "roster_checked", "id", ("sealed",), ("checked roster",),
          "SELECT r.id AS key, r.account_id || ' ' || r.file_sha256 AS bound, 'checked roster ' || r.id AS name, "
          "r.sealed FROM kntc.roster_checked r WHERE r.expires_at > now() ORDER BY r.id FOR UPDATE"),
)


@dataclass
class Outcome:
    resealed: dict[str, int] = field(default_factory=dict)
    current: int = 0
    unreadable: list[str] = field(default_factory=list)

    @property
    def total_resealed(self) -> int:
        return sum(self.resealed.values())


def _open(keys: tuple[str, ...], purposes: Sequence[str], sealed: bytes, bound: str) -> tuple[str, bytes, bool]:
    """(purpose, plaintext, sealed under the first key already); InvalidTag when no key opens it."""
    for purpose in purposes:
        try:
            return purpose, *sealing.opened(keys, purpose, sealed, bound)
        except InvalidTag:
            continue
    raise InvalidTag


def reseal(conn: Connection[dict[str, Any]], keys: sealing.Keys) -> Outcome:
    """Reseal every place under `keys`' first key; when anything is unreadable, change nothing (the
    caller rolls back on `Outcome.unreadable`; no UPDATE is sent before everything opened)."""
    ring = sealing.ring(keys)
    out = Outcome()
    updates: list[tuple[Place, Any, dict[str, bytes]]] = []
    for place in PLACES:
        for row in conn.execute(place.select).fetchall():
            fresh: dict[str, bytes] = {}
            for column in place.columns:
                if row[column] is None:
                    continue
                try:
                    purpose, plain, current = _open(ring, place.purposes, bytes(row[column]), row["bound"])
                except InvalidTag:
                    out.unreadable.append(row["name"])
                    continue
                if not current:
                    fresh[column] = sealing.seal(ring, purpose, plain, row["bound"])
            if fresh:
                updates.append((place, row["key"], fresh))
            else:
                out.current += 1
    if out.unreadable:
        return out
    # One statement per table and set of columns, sent in a pipeline: the rows stay locked for
    # as short a time as the crypto allows (a national rotation reseals tens of thousands).
    groups: dict[tuple[Place, tuple[str, ...]], list[dict[str, Any]]] = {}
    for place, key, fresh in updates:
        groups.setdefault((place, tuple(fresh)), []).append({**fresh, "row_key": key})
        out.resealed[place.label] = out.resealed.get(place.label, 0) + 1
    with conn.cursor() as cur:
        for (place, columns), params in groups.items():
            sets = SQL(", ").join(SQL("{} = %({})s").format(Identifier(c), SQL(c)) for c in columns)
            cur.executemany(SQL("UPDATE kntc.{} SET {} WHERE {} = %(row_key)s").format(
                Identifier(place.table), sets, Identifier(place.key_column)), params)
    return out
