"""Statements the database plans once per server connection instead of once per call.

Through PgBouncer in transaction mode (Debian 12's 1.18, the pooler of every app host) the case
service cannot prepare a statement: one prepared on a server connection is unknown on the next, so
each statement goes as text and PostgreSQL parses and plans it on every call. For a statement of
many parts, each under row-level security, planning costs more than running it: the case file as
one JSON document (fourteen subqueries) spent six sevenths of each call planning on the lab's
leader (loadtests/CAPACITY.md §12, "Planned at every call").

PL/pgSQL keeps the plan of each statement it runs for the life of the server connection, and
PgBouncer keeps server connections open across its clients. So the statements called most are also
functions of the schema, `kntc.planned_<name>`, whose body is the statement as written here (one
home for its SQL). `kntc migrate` installs them after the migrations, on every run: each release's
functions carry that release's statements. They run with the caller's rights (security invoker),
so row-level security sees the officer exactly as it sees the statement sent as text, and only the
application role may call them.

A statement taken out of the registry keeps its function until a migration drops it: during a
rolling release the hosts not yet upgraded still call it. For the same reason a changed statement
keeps its parameters and columns meaningful to the release before it, which calls the new body
until its hosts are upgraded (and after a rollback, until that release is migrated again).

The reads the busy day calls most (the API's case file, a unit's first inbox page, search) go one step
further: an OfficerRead is one function that runs the session statement and then the read, sent
outside a transaction block, so the officer's request is one round trip and one statement where
BEGIN, the session statement, the read and COMMIT were three round trips in a pipeline, and four
statements each a round trip through PgBouncer.

PL/pgSQL plans a statement's first five calls on a connection for their values, then keeps one plan
for all values if it costs no more: right for statements read by a key (a case's code, a session's
token) and for lists whose best plan is the same for every value (a unit's inbox by its own index, a
page of late steps the scope function has already picked); wrong for lists and counts whose best
plan does depend on the values (a commune's whole area and the country's), which stay statements
sent as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import psycopg
from psycopg import sql as pgsql

SCHEMA = "kntc"
CALLER = "kntc_app"
_PLACEHOLDER = re.compile(r"%(?:\((\w+)\)s|(s)|(%))")


@dataclass(frozen=True)
class Planned:
    """A statement with psycopg's placeholders, all `%s` (bound to `params` in order) or all
    `%(name)s` (bound by name), and the columns it returns."""

    name: str
    params: tuple[tuple[str, str], ...]  # (name, SQL type) of each parameter, in the function's order
    returns: tuple[tuple[str, str], ...]  # (column, SQL type) of each column, in order
    sql: str
    volatility: Literal["STABLE", "VOLATILE"] = "STABLE"  # STABLE for statements that only read

    @property
    def function(self) -> str:
        return f"{SCHEMA}.planned_{self.name}"

    @property
    def signature(self) -> str:
        return f"{self.function}({', '.join(t for _, t in self.params)})"

    @property
    def named(self) -> bool:
        return any(m.group(1) for m in _PLACEHOLDER.finditer(self.sql))

    @property
    def call(self) -> str:
        """The statement the case service sends: the function's rows, bound as the statement's were."""
        args = (f"%({n})s" for n, _ in self.params) if self.named else ("%s" for _ in self.params)
        return f"SELECT * FROM {self.function}({', '.join(args)})"

    def body(self) -> str:
        """The statement with each placeholder as the function's positional parameter ($1, $2, ...)."""
        names = [n for n, _ in self.params]
        used: set[int] = set()
        counter = iter(range(1, len(names) + 1))

        def replace(m: re.Match[str]) -> str:
            name, positional, percent = m.groups()
            if percent:
                return "%"
            if positional:
                n = next(counter, None)
                if n is None:
                    raise ValueError(f"{self.name}: more placeholders than parameters")
            elif name in names:
                n = names.index(name) + 1
            else:
                raise ValueError(f"{self.name}: placeholder {name!r} names no parameter")
            used.add(n)
            return f"${n}"

        text = _PLACEHOLDER.sub(replace, self.sql)
        if len(used) != len(names):
            raise ValueError(f"{self.name}: fewer placeholders than parameters")
        return text.strip().rstrip(";")

    def definition(self) -> str:
        params = ", ".join(f"p_{n} {t}" for n, t in self.params)
        columns = ", ".join(f"{c} {t}" for c, t in self.returns)
        # The returned columns are variables of the function too; the statement means its tables'.
        return (f"CREATE OR REPLACE FUNCTION {self.function}({params}) RETURNS TABLE ({columns})\n"
                f"LANGUAGE plpgsql {self.volatility} SECURITY INVOKER AS $planned$\n"
                f"#variable_conflict use_column\nBEGIN\n    RETURN QUERY\n{self.body()};\nEND $planned$")


@dataclass(frozen=True)
class OfficerRead:
    """A read sent with the officer's session statement as one call: `kntc.planned_<name>_as_officer`
    runs `session` (the session token set for the transaction, the idle check, the actor, the API
    budget's judgement) and, only when the session is live and the call within its budget,
    `statement`, each as its own planned function. Sent outside a transaction block, the call is a
    transaction of its own: one round trip, where BEGIN, the two statements and COMMIT took three
    in a pipeline, and the session token it sets ends with it.

    Every row carries the session's columns and `found`; when the session may not read, or the
    statement found nothing, there is one row, `found` false, the statement's columns null.
    `from_session` binds a parameter of the statement to a column of the session's row (the
    officer's own unit), which the caller cannot know before the call."""

    session: Planned
    statement: Planned
    from_session: tuple[tuple[str, str], ...] = ()  # (statement parameter, session column)

    def __post_init__(self) -> None:
        session_names = {n for n, _ in self.session.params} | {c for c, _ in self.session.returns} | {"found"}
        clash = session_names & ({n for n, _ in self.statement.params} | {c for c, _ in self.statement.returns})
        if clash:
            raise ValueError(f"{self.name}: names of both the session and the statement: {sorted(clash)}")
        unknown = [c for _, c in self.from_session if c not in {c for c, _ in self.session.returns}]
        if unknown:
            raise ValueError(f"{self.name}: the session returns no {unknown}")

    @property
    def name(self) -> str:
        return f"{self.statement.name}_as_officer"

    @property
    def function(self) -> str:
        return f"{SCHEMA}.planned_{self.name}"

    @property
    def params(self) -> tuple[tuple[str, str], ...]:
        bound = {n for n, _ in self.from_session}
        return self.session.params + tuple(p for p in self.statement.params if p[0] not in bound)

    @property
    def returns(self) -> tuple[tuple[str, str], ...]:
        return (*self.session.returns, ("found", "boolean"), *self.statement.returns)

    @property
    def signature(self) -> str:
        return f"{self.function}({', '.join(t for _, t in self.params)})"

    @property
    def call(self) -> str:
        """The statement the case service sends, every parameter bound by name."""
        return f"SELECT * FROM {self.function}({', '.join(f'%({n})s' for n, _ in self.params)})"

    def definition(self) -> str:
        params = ", ".join(f"p_{n} {t}" for n, t in self.params)
        columns = ", ".join(f"{c} {t}" for c, t in self.returns)
        session_args = ", ".join(f"p_{n}" for n, _ in self.session.params)
        bound = dict(self.from_session)
        statement_args = ", ".join(f"s.{bound[n]}" if n in bound else f"p_{n}" for n, _ in self.statement.params)
        head = ", ".join(f"s.{c}" for c, _ in self.session.returns)
        nothing = ", ".join(f"NULL::{t}" for _, t in self.statement.returns)
        # The statement runs only for a live session within its budget: the same judgement
        # core_app.gate makes of the session's row, which refuses the call whatever else came back.
        return (f"CREATE OR REPLACE FUNCTION {self.function}({params}) RETURNS TABLE ({columns})\n"
                f"LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $planned$\n"
                f"#variable_conflict use_column\nDECLARE s record;\nBEGIN\n"
                f"    SELECT * INTO STRICT s FROM {self.session.function}({session_args});\n"
                f"    IF s.state = 'live' AND s.account_id IS NOT NULL AND s.allowed IS NOT FALSE THEN\n"
                f"        RETURN QUERY SELECT {head}, true, q.* FROM {self.statement.function}({statement_args}) q;\n"
                f"        IF FOUND THEN RETURN; END IF;\n    END IF;\n"
                f"    RETURN QUERY SELECT {head}, false, {nothing};\nEND $planned$")


class Installable(Protocol):
    """What `install` makes a function of: a Planned statement or an OfficerRead."""

    @property
    def name(self) -> str: ...

    @property
    def function(self) -> str: ...

    @property
    def signature(self) -> str: ...

    def definition(self) -> str: ...


def registry() -> tuple[Installable, ...]:
    """Every planned statement of the case service (imported here: the modules use this one), each
    after the statements its function calls."""
    from core_app import db
    from core_app.dedup import search
    from core_app.repo import cases

    return (db.BEGIN_AS_ACTOR, cases.CASE_FILE, cases.CASE_ROW, cases.UNIT_INBOX,
            cases.UNIT_INBOX_PAGE, cases.OVERDUE, search.SEARCH_PAGE, cases.CASE_FILE_AS_OFFICER,
            cases.UNIT_INBOX_AS_OFFICER, search.SEARCH_AS_OFFICER)


def install(conn: psycopg.Connection[Any], statements: tuple[Installable, ...] | None = None) -> list[str]:
    """(Re)create each statement's function as the schema's owner, in the caller's transaction;
    the functions' names. A function whose columns changed is dropped and made again."""
    done = []
    for p in registry() if statements is None else statements:
        try:
            with conn.transaction():
                conn.execute(p.definition())
        except psycopg.errors.InvalidFunctionDefinition:
            # another return type or parameter names: CREATE OR REPLACE cannot change those
            conn.execute(f"DROP FUNCTION IF EXISTS {p.signature}")
            conn.execute(p.definition())
        conn.execute(pgsql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(pgsql.SQL(p.signature)))
        conn.execute(pgsql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(pgsql.SQL(p.signature),
                                                                          pgsql.Identifier(CALLER)))
        done.append(p.function)
    return done
