"""Petitions and cases a connected system received, stored under its own ids.

The first submission of an `external_id` is a new case file of the client's unit (the same path as
an officer's intake: `repo.cases.create_case`, row-level security, the audit chain), checked first
against the national data for duplicates (`dedup.intake.check`, which tells the client only what an
officer of its unit at its clearance may learn). Later submissions of the same id update the case's
handling and resolution results.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
from psycopg import AsyncConnection
from pydantic import ValidationError

from core_app import throttle
from core_app.db_errors import describe
from core_app.dedup import intake
from core_app.exchange.gate import Client
from core_app.exchange.problems import Problem, from_validation, pointer
from core_app.exchange.schemas import RawBatch, Submission
from core_app.gate import Actor
from core_app.repo import cases
from core_app.repo.cases import Invalid, NotFound, RuleBook

RESULTS = ("status", "accepted_on", "resolved_on", "closed_on", "resolution_summary")

FIND = """
SELECT x.case_id, c.id AS visible, c.code, c.status, c.accepted_on, c.resolved_on, c.closed_on,
       c.resolution_summary, c.version
  FROM kntc.exchange_case x LEFT JOIN kntc.case_file c ON c.id = x.case_id
 WHERE x.client_id = %s AND x.external_id = %s
"""
SET_RESULTS = """
UPDATE kntc.case_file SET status = %(status)s, accepted_on = %(accepted_on)s, resolved_on = %(resolved_on)s,
       closed_on = %(closed_on)s, resolution_summary = %(resolution_summary)s, version = version + 1, updated_at = now()
 WHERE id = %(id)s
RETURNING version
"""
EVENT = """
INSERT INTO kntc.case_event (case_id, actor_id, unit_id, action, from_status, to_status, note, data)
VALUES (%s, %s, %s, 'exchange_update', %s, %s, NULL, %s)
"""


def problem_of(exc: Exception, prefix: tuple[Any, ...] = ()) -> Problem:
    """What a refused item is told, with the field when there is one."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, ValidationError):
        return from_validation(exc, prefix)
    if isinstance(exc, Invalid):
        return Problem(
            422,
            "invalid_fields",
            exc.en,
            errors=[{"pointer": pointer((*prefix, *exc.field.split("."))), "detail": exc.en}],
        )
    if isinstance(exc, NotFound):
        return Problem(404, "not_found", "not found (or outside what this client may see)")
    if isinstance(exc, throttle.Throttled):
        return Problem(429, exc.code, exc.en, headers={"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, psycopg.Error):
        status, body = describe(exc)
        return Problem(status, body["error"], body["message_en"])
    raise exc


async def _duplicates(conn: AsyncConnection[Any], actor: Actor, sub: Submission) -> dict[str, Any]:
    """The national duplicate check every petition is recorded under (the database requires it), run
    for every party of the submission; the client hears only what the check lets it read."""
    parties = [
        {"full_name": p.full_name, "id_number": p.id_number, "address_unit": p.address_unit} for p in sub.parties
    ]
    found = await intake.check(
        conn, actor, {"parties": parties[:20], "subject": sub.subject, "respondent": sub.respondent, "limit": 5}
    )
    # The check's record need not wait for the WAL (intake.check); the submission must.
    await conn.execute("RESET synchronous_commit")
    return found


async def _set_results(
    conn: AsyncConnection[Any], actor: Actor, case_id: Any, before: str | None, sub: Submission
) -> None:
    from psycopg.types.json import Jsonb

    await conn.execute(SET_RESULTS, {"id": case_id, **{k: getattr(sub, k) for k in RESULTS}})
    await conn.execute(
        EVENT, (case_id, actor.account_id, actor.unit_id, before, sub.status, Jsonb({"external_id": sub.external_id}))
    )


async def one(
    conn: AsyncConnection[Any], client: Client, actor: Actor, book: RuleBook, sub: Submission, today: date
) -> tuple[int, dict[str, Any]]:
    """(201 created | 200 updated or unchanged, the result) for one valid submission."""
    cur = await conn.execute(FIND, (client.id, sub.external_id))
    known = await cur.fetchone()
    if known is not None:
        if known["visible"] is None:
            raise Problem(
                409,
                "case_out_of_reach",
                "this external_id names a case this client can no longer see "
                "(it was transferred or classified above its clearance)",
            )
        result = {"external_id": sub.external_id, "case_code": known["code"]}
        if all(known[k] == getattr(sub, k) for k in RESULTS):
            return 200, {**result, "outcome": "unchanged", "case_status": known["status"]}
        await _set_results(conn, actor, known["case_id"], known["status"], sub)
        await conn.execute(
            "UPDATE kntc.exchange_case SET updated_at = now() WHERE client_id = %s AND external_id = %s",
            (client.id, sub.external_id),
        )
        return 200, {**result, "outcome": "updated", "case_status": sub.status}
    for i, p in enumerate(sub.parties):
        if p.address_unit and await cases.unit_id_by_code(conn, p.address_unit) is None:
            raise Invalid(
                f"parties.{i}.address_unit",
                f"Không có đơn vị hành chính hiện hành mã {p.address_unit}.",
                f"no current unit with code {p.address_unit!r}",
            )
    duplicates = await _duplicates(conn, actor, sub)
    data = sub.model_dump(exclude=set(RESULTS) | {"external_id"})
    data["reception_id"] = None
    # The connected system recorded the petition as its own matter: new here, with the likely
    # matches kept beside the decision and told to the client.
    data["dedup_check_id"] = duplicates["check_id"]
    data["dedup_note"] = f"connected system, external id {sub.external_id}"
    created = await cases.create_case(conn, actor, book, data, today)
    if any(getattr(sub, k) for k in RESULTS[1:]) or sub.status != "received":
        await _set_results(conn, actor, created["id"], "received", sub)
    await conn.execute(
        "INSERT INTO kntc.exchange_case (client_id, external_id, case_id) VALUES (%s, %s, %s)",
        (client.id, sub.external_id, created["id"]),
    )
    return 201, {
        "external_id": sub.external_id,
        "case_code": created["code"],
        "outcome": "created",
        "case_status": sub.status,
        "duplicates": duplicates,
    }


async def single(
    conn: AsyncConnection[Any], client: Client, actor: Actor, book: RuleBook, body: Any, today: date
) -> tuple[int, dict[str, Any]]:
    try:
        sub = Submission.model_validate(body)
    except ValidationError as exc:
        raise from_validation(exc) from None
    try:
        return await one(conn, client, actor, book, sub, today)
    except (Invalid, NotFound, throttle.Throttled, psycopg.Error) as exc:
        raise problem_of(exc) from None


async def batch(
    conn: AsyncConnection[Any], client: Client, actor: Actor, book: RuleBook, body: Any, today: date
) -> tuple[int, dict[str, Any]]:
    """A result per item: a refused item leaves nothing behind (its own savepoint), its neighbours stay."""
    try:
        raw = RawBatch.model_validate(body)
    except ValidationError as exc:
        raise from_validation(exc) from None
    results: list[dict[str, Any]] = []
    for i, item in enumerate(raw.items):
        try:
            sub = Submission.model_validate(item)
            async with conn.transaction():
                status, result = await one(conn, client, actor, book, sub, today)
            results.append({"index": i, "status": status, **result})
        except (ValidationError, Problem, Invalid, NotFound, throttle.Throttled, psycopg.Error) as exc:
            problem = problem_of(exc, ("items", i))
            results.append(
                {
                    "index": i,
                    "status": problem.status,
                    "external_id": item.get("external_id"),
                    "problem": problem.body(),
                }
            )
    stored = sum(1 for r in results if r["status"] < 300)
    return 200, {"stored": stored, "refused": len(results) - stored, "results": results}
