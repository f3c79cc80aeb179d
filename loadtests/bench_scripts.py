"""The pgbench scripts of bench-app's reads, made from the statements the case service sends.

Each script is one request of its endpoint, statement for statement and round trip for round trip:
BEGIN, the session statement with the call's API budget (core_app/db.py `BEGIN_AS_ACTOR`), the
endpoint's own statements, COMMIT. They are built from the same objects the app runs, so the bench
measures a changed statement without anyone editing a copy of it. Copies kept by hand had drifted:
the inbox and search scripts still opened with an earlier release's session statement, and none
called the planned functions the app has called since they were made.

Through PgBouncer (the bench's default mode, as on the app hosts) every statement is a round trip of
its own; in the app's pipeline mode BEGIN travels with the session statement. pgbench binds the
variables: `token` (the officer's session), `key` (its API budget's counter), `unit_id` (the
officer's unit), and for the case file `prefix`, `lo` and `hi` (the bench's case codes, one drawn at
random each time).

The intake's own statements (`pgbench/record_petition.sql`) are still written by hand: they follow
create_case's course through a dozen statements, not one registry entry per step. Its opening is
made here like the reads'.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote_plus

from psycopg import sql

from core_app.api.routes import cases as case_routes
from core_app.api.routes import search as search_routes
from core_app.db import BEGIN_AS_ACTOR
from core_app.dedup import search
from core_app.repo import cases
from core_app.settings import Settings
from core_app.throttle import budget_of

# What the bench's reads ask for, over HTTP (bench_app) and here alike, each at its route's default page.
INBOX_STATUS = "in_handling"
SEARCH_WORDS = "bồi thường"
INBOX_PATH = f"/api/cases?scope=unit&status={INBOX_STATUS}"
SEARCH_PATH = f"/api/search?q={quote_plus(SEARCH_WORDS)}"
_NAMED = re.compile(r"%\((\w+)\)s")
# The intake's statements after its session statement, written by hand (see the module's docstring).
INTAKE_BODY = Path(__file__).resolve().parent / "pgbench" / "record_petition.sql"


def default_page(route: Callable[..., object]) -> int:
    """A route's `per_page` when the request names none (FastAPI's Query default)."""
    return int(inspect.signature(route).parameters["per_page"].default.default)


def budget_key(token: str) -> str:
    """The API budget's counter of a session, as the app keys it."""
    return budget_of(token, "").key


def bind(statement: str, values: Mapping[str, str]) -> str:
    """A statement with psycopg's named placeholders, each replaced by an SQL expression."""
    return _NAMED.sub(lambda m: values[m.group(1)], statement).strip()


def literal(value: object) -> str:
    return sql.Literal(value).as_string(None)


def _statement(text: str) -> str:
    return " ".join(text.split()) + ";\n"


def opening(pipelined: bool, kept: bool = False) -> str:
    """BEGIN and the session statement, judging the call against the session's budget as the app does;
    `kept`: its row kept as variables `a_<column>` (pgbench keeps none inside a pipeline)."""
    session = _statement(BEGIN_AS_ACTOR.call_with({
        "token": ":token", "idle": str(Settings.model_fields["idle_seconds"].default),
        "purpose": literal("api_session"), "key": ":key", "more": "1"}))
    if kept:
        return "BEGIN;\n" + session.removesuffix(";\n") + " \\gset a_\n"
    if pipelined:
        return "\\startpipeline\nBEGIN;\n" + session + "\\endpipeline\n"
    return "BEGIN;\n" + session


def case_file() -> str:
    """GET /api/cases/{code}: the case file as one JSON document (core_app/repo/cases.py case_file_json)."""
    return _statement(cases.CASE_FILE.call_with({"code": ":prefix || lpad(:n::text, 6, '0')"}))


def inbox() -> str:
    """GET /api/cases?scope=unit&status=in_handling: the unit's first page (cases.list_cases)."""
    return _statement(cases.UNIT_INBOX.call_with({"status": literal(INBOX_STATUS), "mine": ":unit_id",
                                                  "limit": str(default_page(case_routes.list_cases) + 1)}))


def search_page() -> str:
    """GET /api/search?q=bồi thường: the ids, then their rows (core_app/dedup/search.py search). The app
    carries the ids to the second statement in Python; here pgbench does (`\\gset`), the ids gathered
    into one array on the server."""
    given = search.params({"q": SEARCH_WORDS}, None, default_page(search_routes.search))
    ids = bind(search.IDS, {k: literal(v) for k, v in given.items()})
    gather = " ".join(f"SELECT coalesce(array_agg(id), '{{}}') AS ids FROM ({ids}) i".split())
    return gather + " \\gset s_\n" + _statement(search.ROWS.call_with({"ids": ":s_ids"}))


READS: dict[str, Callable[[], str]] = {"case_file.sql": case_file, "inbox.sql": inbox, "search.sql": search_page}


def script(name: str, pipelined: bool) -> str:
    # pgbench draws the case before the transaction, as the bench's clients pick the next code
    draw = "\\set n random(:lo, :hi)\n" if name == "case_file.sql" else ""
    return (f"-- {name}: made by loadtests/bench_scripts.py from the case service's statements\n" + draw
            + opening(pipelined) + READS[name]() + "COMMIT;\n")


def session_only(pipelined: bool) -> str:
    """What every officer request costs the database before its own SQL."""
    return "-- the session statement alone: made by loadtests/bench_scripts.py\n" + opening(pipelined) + "COMMIT;\n"


def intake() -> str:
    """POST /api/dedup/check + POST /api/cases, from the hand-written `record_petition.sql`: its draws,
    then BEGIN and the session statement (its row kept, the intake's statements use the officer's unit
    and account), then the rest. Never pipelined: the intake's statements need the session's row."""
    lines = INTAKE_BODY.read_text().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if not line.startswith(("--", "\\set")))
    return "".join(lines[:first]) + opening(False, kept=True) + "".join(lines[first:])


def write(folder: Path, name: str, pipelined: bool) -> Path:
    """The script `name` (one of READS, `record_petition.sql`, or `session.sql`) written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / (f"pipelined-{name}" if pipelined else name)
    made = {"session.sql": lambda: session_only(pipelined), INTAKE_BODY.name: intake}.get(name)
    out.write_text(made() if made else script(name, pipelined))
    return out


def variables(token: str, unit_id: int) -> dict[str, str]:
    return {"token": token, "key": budget_key(token), "unit_id": str(unit_id)}

