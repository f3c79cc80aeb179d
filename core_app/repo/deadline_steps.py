"""The steps of a case with a legal time limit: started by one event, ended by another, extended by
decision. Which event starts or ends which rule is data (`kntc.deadline_rule_version`); this module
only says which event happened.

Events that start a step: receipt, acceptance, known (the complainant learnt of the decision),
first_decision (the first-round decision on a complaint), discovery. Events that end one are the
workflow's action names (accept, forward, guide, file_away, return, notify_acceptance, resolve,
correct) and receipt (a filing limit ends when the petition arrives).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core_app.domain import workflow
from core_app.domain.deadlines import due_for, extension_refusal
from core_app.repo.planned import Planned
from core_app.repo.rules import RuleBook

# A step started, or started again by a later event of the same kind. A write of every intake and of
# many workflow steps: planned once per server connection (core_app/repo/planned.py).
UPSERT = Planned(
    "deadline_start",
    params=(("case_id", "uuid"), ("step", "text"), ("code", "text"), ("version", "integer"), ("starts_on", "date"),
            ("due_on", "date")),
    returns=(),
    volatility="VOLATILE",
    sql="""
INSERT INTO kntc.case_deadline (case_id, step, rule_code, rule_version, starts_on, due_on, met_on, ended_by)
VALUES (%(case_id)s, %(step)s, %(code)s, %(version)s, %(starts_on)s, %(due_on)s, NULL, NULL)
ON CONFLICT (case_id, step) DO UPDATE SET rule_code = EXCLUDED.rule_code, rule_version = EXCLUDED.rule_version,
    starts_on = EXCLUDED.starts_on, due_on = EXCLUDED.due_on, extensions = 0, met_on = NULL, ended_by = NULL
""")

# A step ends when the event is among its rule version's end events (a row from before versions
# existed is read with the rule as it is now). Every workflow step that ends one runs it: planned.
END = Planned(
    "deadline_end",
    params=(("case_id", "uuid"), ("event", "text"), ("on", "date")),
    returns=(),
    volatility="VOLATILE",
    sql="""
UPDATE kntc.case_deadline d SET met_on = %(on)s, ended_by = %(event)s
 WHERE d.case_id = %(case_id)s AND d.met_on IS NULL
   AND EXISTS (SELECT 1 FROM kntc.deadline_rule r
                 LEFT JOIN kntc.deadline_rule_version v ON v.code = r.code AND v.version = d.rule_version
                WHERE r.code = d.rule_code AND %(event)s::text = ANY (coalesce(v.end_events, r.end_events)))
""")


def step_key(step: str, complaint_round: int) -> str:
    """The row of a step: a second-round complaint keeps its first round's steps beside its own."""
    return step if complaint_round == 1 else f"{step}.r{complaint_round}"


async def start(conn: AsyncConnection[Any], book: RuleBook, case: dict[str, Any], event: str,
                on: date) -> list[dict[str, Any]]:
    """Start every step of this case's kind and round that `event` starts; returns them."""
    started = []
    for rule in book.starting(case["kind"], case["complaint_round"], event, on):
        due = due_for(rule, on, book.calendar, is_complex=case["is_complex"], is_remote=case["is_remote_area"])
        row = {"case_id": case["id"], "step": step_key(rule.step, case["complaint_round"]), "code": rule.code,
               "version": rule.version, "starts_on": on, "due_on": due}
        await conn.execute(UPSERT.call, row)
        started.append({**row, "legal_basis": rule.legal_basis})
    return started


async def end(conn: AsyncConnection[Any], case_id: Any, event: str, on: date) -> None:
    """End the open steps of the case that `event` ends."""
    await conn.execute(END.call, {"case_id": case_id, "event": event, "on": on})


async def extend(conn: AsyncConnection[Any], actor: workflow.Actor, book: RuleBook, case: dict[str, Any],
                 params: dict[str, Any], today: date) -> dict[str, Any]:
    """Extend an open step by the head's decision, as far as its rule version allows."""
    step = params.get("step") or "resolve"
    key = step_key(step, case["complaint_round"])
    cur = await conn.execute("SELECT rule_code, rule_version, extensions, starts_on, due_on, met_on "
                             "FROM kntc.case_deadline WHERE case_id = %s AND step = %s", (case["id"], key))
    row = await cur.fetchone()
    if row is None or row["met_on"] is not None:
        raise workflow.TransitionRefused("no_open_step", "Bước này không có thời hạn đang chạy để gia hạn.",
                                         f"no running time limit for step {step!r} to extend")
    rule = book.version(row["rule_code"], row["rule_version"])
    assert rule is not None
    n = row["extensions"] + 1
    refusal = extension_refusal(rule, n, params.get("level"))
    if refusal:
        raise workflow.TransitionRefused("no_extension_left", *refusal)
    reason = (params.get("note") or "").strip()
    if len(reason) < 10:
        raise workflow.TransitionRefused("missing_field", "Cần nêu lý do gia hạn (ít nhất 10 ký tự).",
                                         "an extension needs its reason (10 characters at least)")
    due = due_for(rule, row["starts_on"], book.calendar, is_complex=case["is_complex"],
                  is_remote=case["is_remote_area"], extensions=n)
    await conn.execute(
        "INSERT INTO kntc.deadline_extension (case_id, step, extension_no, days, level, reason, decision_ref, "
        "approved_by, unit_id, approved_on, old_due_on, new_due_on) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (case["id"], key, n, rule.extension_days, params.get("level"), reason, params.get("decision_ref"),
         actor.account_id, actor.unit_id, today, row["due_on"], due))
    await conn.execute("UPDATE kntc.case_deadline SET extensions = %s, due_on = %s WHERE case_id = %s AND step = %s",
                       (n, due, case["id"], key))
    return {"step": key, "extension": n, "new_due_on": due.isoformat(), "legal_basis": rule.legal_basis}


# What a step's count depends on, among the fields a correction may change.
RECOMPUTED_BY = ("kind", "is_complex", "is_remote_area", "received_on")

OPEN_STEPS = """
SELECT d.step, d.rule_code, d.rule_version, d.starts_on, d.due_on, d.extensions,
       coalesce(v.start_event, r.start_event) AS start_event
  FROM kntc.case_deadline d
  JOIN kntc.deadline_rule r ON r.code = d.rule_code
  LEFT JOIN kntc.deadline_rule_version v ON v.code = r.code AND v.version = d.rule_version
 WHERE d.case_id = %s AND d.met_on IS NULL
 ORDER BY d.step
 FOR UPDATE OF d
"""

RECORD = """
INSERT INTO kntc.deadline_recompute (case_id, step, rule_before, version_before, starts_before, due_before,
    rule_after, version_after, starts_after, due_after, cause, reason, changed_by, unit_id, changed_on)
VALUES (%(case_id)s, %(step)s, %(rule_before)s, %(version_before)s, %(starts_before)s, %(due_before)s,
    %(rule_after)s, %(version_after)s, %(starts_after)s, %(due_after)s, %(cause)s, %(reason)s, %(by)s, %(unit)s,
    %(on)s)
"""

# Events that can still start a missing step of a corrected kind: the case is still where that event left it.
_STILL_AT = {"receipt": ("received", "in_handling"), "acceptance": ("accepted", "verifying")}


def _round_of(step: str) -> tuple[str, int]:
    base, _, r = step.partition(".r")
    return base, int(r) if r.isdigit() else 1


async def recompute(conn: AsyncConnection[Any], actor: workflow.Actor, book: RuleBook, before: dict[str, Any],
                    changes: dict[str, Any], reason: str | None, today: date) -> list[dict[str, Any]]:
    """Recount the case's open steps after `changes` to what they depend on (the kind, complexity, remote
    area, the day received), each under the rule version in force on the day it starts; record each
    change (kntc.deadline_recompute). Closed steps stay as recorded. A step the corrected kind does not
    have is ended ("not applicable"); one it has and the old kind had not starts as of its event, if
    the case is still at that stage. Returns the changes."""
    cause = {k: {"before": _iso(before[k]), "after": _iso(changes[k])}
             for k in RECOMPUTED_BY if k in changes and changes[k] != before[k]}
    if not cause:
        return []
    case = {**before, **changes}
    done: list[dict[str, Any]] = []
    rows = await (await conn.execute(OPEN_STEPS, (case["id"],))).fetchall()
    for row in rows:
        base, rnd = _round_of(row["step"])
        starts = row["starts_on"]
        if ("received_on" in cause and rnd == 1 and row["start_event"] == "receipt"
                and starts == before["received_on"]):
            starts = case["received_on"]
        rule = book.find(case["kind"], base, rnd, starts)
        if rule is None or rule.start_event != row["start_event"]:
            rec = _change(case, row, None, None, None, cause, reason, actor, today)
            await conn.execute(RECORD, rec)
            await conn.execute("UPDATE kntc.case_deadline SET met_on = %s, ended_by = %s WHERE case_id = %s AND "
                               "step = %s", (today, "recompute: not applicable", case["id"], row["step"]))
            done.append(rec)
            continue
        ext = min(row["extensions"], rule.max_extensions)
        due = due_for(rule, starts, book.calendar, is_complex=case["is_complex"], is_remote=case["is_remote_area"],
                      extensions=ext)
        if (rule.code, rule.version, starts, due) == (row["rule_code"], row["rule_version"], row["starts_on"],
                                                      row["due_on"]):
            continue
        rec = _change(case, row, rule, starts, due, cause, reason, actor, today)
        await conn.execute(RECORD, rec)  # first: the guard accepts a later due date only with it
        await conn.execute("UPDATE kntc.case_deadline SET rule_code = %s, rule_version = %s, starts_on = %s, "
                           "due_on = %s, extensions = %s WHERE case_id = %s AND step = %s",
                           (rule.code, rule.version, starts, due, ext, case["id"], row["step"]))
        done.append(rec)
    if "kind" in cause:
        done += await _start_missing(conn, actor, book, case, cause, reason, today)
    return done


async def _start_missing(conn: AsyncConnection[Any], actor: workflow.Actor, book: RuleBook, case: dict[str, Any],
                         cause: dict[str, Any], reason: str | None, today: date) -> list[dict[str, Any]]:
    # A step ended as not applicable by an earlier correction of the kind counts again if the kind comes back.
    cur = await conn.execute("SELECT step FROM kntc.case_deadline WHERE case_id = %s "
                             "AND ended_by IS DISTINCT FROM 'recompute: not applicable'", (case["id"],))
    have = {r["step"] for r in await cur.fetchall()}
    done = []
    for event, on in (("receipt", case["received_on"]), ("acceptance", case.get("accepted_on"))):
        if on is None or case["status"] not in _STILL_AT[event] or case["complaint_round"] != 1:
            continue
        for rule in book.starting(case["kind"], case["complaint_round"], event, on):
            key = step_key(rule.step, case["complaint_round"])
            if key in have:
                continue
            due = due_for(rule, on, book.calendar, is_complex=case["is_complex"], is_remote=case["is_remote_area"])
            rec = _change(case, {"step": key}, rule, on, due, cause, reason, actor, today)
            await conn.execute(RECORD, rec)
            await conn.execute(UPSERT.call, {"case_id": case["id"], "step": key, "code": rule.code,
                                        "version": rule.version, "starts_on": on, "due_on": due})
            done.append(rec)
    return done


def _change(case: dict[str, Any], row: dict[str, Any], rule: Any, starts: date | None, due: date | None,
            cause: dict[str, Any], reason: str | None, actor: workflow.Actor, today: date) -> dict[str, Any]:
    return {"case_id": case["id"], "step": row["step"], "rule_before": row.get("rule_code"),
            "version_before": row.get("rule_version"), "starts_before": row.get("starts_on"),
            "due_before": row.get("due_on"), "rule_after": rule.code if rule else None,
            "version_after": rule.version if rule else None, "starts_after": starts, "due_after": due,
            "cause": Jsonb(cause), "reason": reason, "by": actor.account_id, "unit": actor.unit_id, "on": today}


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date) else v


def plain(rec: dict[str, Any]) -> dict[str, Any]:
    """A recompute record as the timeline keeps it."""
    return {k: _iso(rec[k]) for k in ("step", "rule_before", "due_before", "rule_after", "due_after")}


# The one-off recount: a step left open although the event that ends it is on the case's timeline
# (after the event that started it), or although the case is finished, is ended as of that event.
# Before end events existed nothing ended the denunciation notice (TC-NOTIFY), and a resolved or
# finished case kept it overdue for ever; a still-open accepted denunciation with no notice recorded
# stays open: only the officers know whether it was sent (they record it with notify_acceptance).
RECOUNT = """
WITH open AS (
    SELECT d.case_id, d.step, d.rule_code, d.starts_on, d.due_on, c.code, c.status, c.closed_on, c.resolved_on,
           coalesce(v.end_events, r.end_events) AS ends,
           CASE coalesce(v.start_event, r.start_event)
                WHEN 'receipt' THEN '{receive,forward,second_round,import}'::text[]
                WHEN 'acceptance' THEN '{accept}'::text[] ELSE '{}'::text[] END AS starts
      FROM kntc.case_deadline d
      JOIN kntc.case_file c ON c.id = d.case_id
      JOIN kntc.deadline_rule r ON r.code = d.rule_code
      LEFT JOIN kntc.deadline_rule_version v ON v.code = r.code AND v.version = d.rule_version
     WHERE d.met_on IS NULL
), found AS (
    SELECT o.*, e.at::date AS event_on, e.action AS event
      FROM open o
      LEFT JOIN LATERAL (
            SELECT x.at, x.action FROM kntc.case_event x
             WHERE x.case_id = o.case_id AND x.action = ANY (o.ends)
               AND x.id > coalesce((SELECT max(s.id) FROM kntc.case_event s
                                     WHERE s.case_id = o.case_id AND s.action = ANY (o.starts)
                                       AND s.at::date <= o.starts_on), 0)
             ORDER BY x.id LIMIT 1) e ON true
), decided AS (
    SELECT f.case_id, f.step, f.code, f.rule_code, f.due_on,
           CASE WHEN f.event IS NOT NULL THEN f.event_on
                WHEN f.status IN ('closed', 'guided', 'filed', 'returned')
                     THEN coalesce(f.closed_on, f.resolved_on,
                                   (SELECT max(x.at)::date FROM kntc.case_event x WHERE x.case_id = f.case_id))
                WHEN f.status = 'resolved' AND f.step LIKE 'notify_acceptance%%' THEN f.resolved_on
           END AS met_on,
           CASE WHEN f.event IS NOT NULL THEN f.event || ' (recount)'
                WHEN f.status IN ('closed', 'guided', 'filed', 'returned') THEN 'recount: case ' || f.status
                WHEN f.status = 'resolved' AND f.step LIKE 'notify_acceptance%%' THEN 'recount: case resolved'
           END AS ended_by
      FROM found f
)
UPDATE kntc.case_deadline d SET met_on = x.met_on, ended_by = x.ended_by
  FROM decided x
 WHERE d.case_id = x.case_id AND d.step = x.step AND d.met_on IS NULL AND x.met_on IS NOT NULL
RETURNING x.code, x.step, x.rule_code, x.due_on, x.met_on, x.ended_by
"""

STILL_OVERDUE = """
SELECT d.rule_code, count(*) AS open_overdue FROM kntc.case_deadline d
 WHERE d.met_on IS NULL AND d.due_on < (now() AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
 GROUP BY d.rule_code ORDER BY d.rule_code
"""


def recount(conn: Any, *, dry_run: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """End the steps recorded open by mistake (owner role, sync connection): (changed, still overdue per rule).
    A dry run shows the same and keeps nothing."""
    import psycopg

    changed: list[dict[str, Any]] = []
    remaining: list[dict[str, Any]] = []
    with conn.transaction():
        changed = conn.execute(RECOUNT, {}).fetchall()
        remaining = conn.execute(STILL_OVERDUE, {}).fetchall()
        if dry_run:
            raise psycopg.Rollback()  # what would change, and nothing changed
    changed.sort(key=lambda r: (r["code"], r["step"]))
    return changed, remaining
