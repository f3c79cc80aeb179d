"""Unit codes as users and old systems write them, resolved to the current unit."""

from __future__ import annotations

import re
from typing import Any

# A current unit (valid_to IS NULL) is itself; a legacy one ('LX…', 'LH…', 'LT…') is its successor.
RESOLVE = """
SELECT u.code AS given, coalesce(CASE WHEN u.valid_to IS NULL THEN u.id END, u.successor_id) AS unit_id,
       (u.valid_to IS NOT NULL) AS legacy, u.id AS written_id
  FROM kntc.unit u WHERE u.code = ANY (%s)
"""

_GSO_WARD = re.compile(r"^[0-9]{5}$")


def candidates_for(code: str) -> list[str]:
    """The unit codes a written code may mean, most likely first.

    A bare five-digit GSO ward code comes from the old three-tier lists (cases since 2018), so
    the legacy ward is tried before a current commune with the same number.
    """
    code = code.strip().upper()
    if _GSO_WARD.match(code):
        return [f"LX{code}", f"X{code}"]
    return [code]


def resolve_sync(conn: Any, codes: list[str]) -> dict[str, int | None]:
    """{written code: current unit id or None} for a psycopg (sync) connection."""
    wanted = sorted({c for code in codes for c in candidates_for(code)})
    found = {r["given"]: r["unit_id"] for r in conn.execute(RESOLVE, (wanted,)).fetchall()}
    return {code: next((found[c] for c in candidates_for(code) if found.get(c)), None) for code in codes}


async def resolve(conn: Any, codes: list[str]) -> dict[str, int | None]:
    wanted = sorted({c for code in codes for c in candidates_for(code)})
    cur = await conn.execute(RESOLVE, (wanted,))
    found = {r["given"]: r["unit_id"] for r in await cur.fetchall()}
    return {code: next((found[c] for c in candidates_for(code) if found.get(c)), None) for code in codes}


def _written(found: dict[str, Any], codes: list[str]) -> dict[str, tuple[int, int | None] | None]:
    out: dict[str, tuple[int, int | None] | None] = {}
    for code in codes:
        hit = next((found[c] for c in candidates_for(code) if c in found and found[c]["unit_id"]), None)
        out[code] = (hit["unit_id"], hit["written_id"] if hit["legacy"] else None) if hit else None
    return out


async def resolve_written(conn: Any, codes: list[str]) -> dict[str, tuple[int, int | None] | None]:
    """{written code: (current unit id, the legacy unit as written or None)}, None when unknown.

    Citizens will write pre-2025 addresses for years: the legacy unit is kept beside its successor,
    and the duplicate check matches on both."""
    wanted = sorted({c for code in codes for c in candidates_for(code)})
    cur = await conn.execute(RESOLVE, (wanted,))
    return _written({r["given"]: r for r in await cur.fetchall()}, codes)


def resolve_written_sync(conn: Any, codes: list[str]) -> dict[str, tuple[int, int | None] | None]:
    wanted = sorted({c for code in codes for c in candidates_for(code)})
    return _written({r["given"]: r for r in conn.execute(RESOLVE, (wanted,)).fetchall()}, codes)
