"""The duplicate decision a petition is recorded under: the officer's own check, claimed once, and
the decision kept with the case (new case, or linked to it).

The database holds the same rule (kntc.petition_intake_guard, kntc.petition_intake_decided,
kntc.case_intake_decided): this module asks first, so that the officer hears why in both languages.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from core_app.domain import workflow
from core_app.repo.planned import Planned

# Every intake claims its check: planned once per server connection (core_app/repo/planned.py).
CLAIM = Planned(
    "dedup_claim",
    params=(("check_id", "uuid"),),
    returns=(("id", "uuid"), ("account_id", "integer"), ("parties", "jsonb"), ("candidates", "jsonb"),
             ("fresh", "boolean"), ("decided", "boolean"), ("used", "boolean")),
    sql="""
SELECT c.id, c.account_id, kntc.dedup_check_parties(c.id) AS parties, c.candidates,
       now() - c.at < interval '12 hours' AS fresh,
       EXISTS (SELECT 1 FROM kntc.dedup_decision d WHERE d.check_id = c.id) AS decided,
       EXISTS (SELECT 1 FROM kntc.petition p WHERE p.intake_check_id = c.id) AS used
  FROM kntc.dedup_check c WHERE c.id = %s
""")


def _refused(vi: str, en: str) -> workflow.TransitionRefused:
    return workflow.TransitionRefused("duplicate_check_required", vi, en)


def _norm(name: str | None) -> str:
    return " ".join((name or "").casefold().split())


async def claim(conn: AsyncConnection[Any], actor: workflow.Actor, check_id: str | None,
                parties: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The check a petition is about to be recorded under, if it is this officer's, recent and unused,
    and (for a new case) was run for these parties."""
    if not check_id:
        raise _refused("Chưa kiểm tra trùng: hãy kiểm tra trùng (POST /api/dedup/check) rồi ghi nhận đơn với "
                       "dedup_check_id của lần kiểm tra đó.",
                       "no duplicate check: run POST /api/dedup/check, then record the petition with its "
                       "dedup_check_id")
    cur = await conn.execute(CLAIM.call, (str(check_id),))
    chk = await cur.fetchone()
    if chk is None or chk["account_id"] != actor.account_id:
        raise _refused("Không tìm thấy lần kiểm tra trùng này của tài khoản.",
                       "no such duplicate check of your account")
    if chk["decided"] or chk["used"]:
        raise _refused("Lần kiểm tra trùng này đã có quyết định; hãy kiểm tra lại cho đơn mới.",
                       "this duplicate check already has its decision: check again for a new petition")
    if not chk["fresh"]:
        raise _refused("Lần kiểm tra trùng đã quá 12 giờ; hãy kiểm tra lại.",
                       "the duplicate check is more than 12 hours old: check again")
    # The parties typed at the check are readable by its officer only (kntc.dedup_check_parties); an
    # operator's command acting for an officer (the demo) reads none, and the database still checks
    # the ID numbers at commit (kntc.petition_intake_decided).
    if parties is not None and chk["parties"] is not None:
        asked = chk["parties"]
        ids = {p.get("id_number") for p in asked if p.get("id_number")}
        names = {_norm(p.get("full_name")) for p in asked if p.get("full_name")}
        for p in parties:
            if (p.get("id_number") and p["id_number"] not in ids) or (
                    not p.get("id_number") and _norm(p.get("full_name")) not in names):
                raise _refused("Lần kiểm tra trùng không phải cho người gửi đơn này; hãy kiểm tra lại.",
                               "the duplicate check was not run for these parties: check again")
    return chk


async def record(conn: AsyncConnection[Any], actor: workflow.Actor, check_id: str, decision: str, *,
                 case_id: Any = None, petition_id: Any = None, other_unit_id: int | None = None,
                 lead_handle: str | None = None, note: str | None = None) -> dict[str, Any]:
    cur = await conn.execute(
        "INSERT INTO kntc.dedup_decision (check_id, account_id, unit_id, unit_path, decision, case_id, petition_id, "
        "other_unit_id, lead_handle, note) SELECT %s, %s, u.id, u.path, %s, %s, %s, %s, %s, %s FROM kntc.unit u "
        "WHERE u.id = %s RETURNING id, decided_at",
        (check_id, actor.account_id, decision, case_id, petition_id, other_unit_id, lead_handle, note,
         actor.unit_id))
    row = await cur.fetchone()
    assert row is not None
    return row


# What was proposed at intake and what the officer decided, for the case page: a proposed case the
# reader may not read is shown only as "held elsewhere" (its code and unit stay hidden).
# The code is taken out of the JSON in a subquery kept whole (OFFSET 0) and the lookup compares two
# texts. Written `v.code = e ->> 'case_code'`, PostgreSQL planned it on the lab's 300,000 case files
# as a scan of the reader's scope by unit path (the code only a filter), and the case file cost
# 0.1-1.7 s of database CPU even for a case with no intake decision; this way it is planned as a
# lookup by the code's index (0.5-1.2 ms).
OF_CASE = """
SELECT d.decision, d.decided_at, d.note, d.source, a.username AS decided_by,
       coalesce((SELECT jsonb_agg(CASE WHEN k.e ? 'held_elsewhere' OR NOT EXISTS (
                                      SELECT 1 FROM kntc.case_file v WHERE v.code = k.code)
                                  THEN '{"held_elsewhere": true}'::jsonb ELSE k.e END)
                   FROM (SELECT e, e ->> 'case_code' AS code FROM jsonb_array_elements(c.candidates) e
                         OFFSET 0) k), '[]') AS proposed
  FROM kntc.dedup_decision d
  JOIN kntc.dedup_check c ON c.id = d.check_id
  LEFT JOIN kntc.account a ON a.id = d.account_id
 WHERE d.case_id = %s
 ORDER BY d.decided_at
"""


async def of_case(conn: AsyncConnection[Any], case_id: Any) -> list[dict[str, Any]]:
    cur = await conn.execute(OF_CASE, (case_id,))
    return await cur.fetchall()
