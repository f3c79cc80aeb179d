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

PL/pgSQL plans a statement's first five calls on a connection for their values, then keeps one plan
for all values if it costs no more: right for statements read by a key (a case's code, a session's
token) and for lists whose best plan is the same for every value (a unit's inbox by its own index, a
page of late steps the scope function has already picked); wrong for lists and counts whose best
plan does depend on the values (a commune's whole area and the country's), which stay statements
sent as text. A statement whose best plan is the same for every value while its estimates are not (a
list of ids: the kept plan guesses its length) may never be judged to cost no more, and is planned
at every call after all; `generic=True` keeps one plan from the first call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

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
    returns: tuple[tuple[str, str], ...]  # (column, SQL type) of each column, in order; none: a write alone
    sql: str
    volatility: Literal["STABLE", "VOLATILE"] = "STABLE"  # STABLE for statements that only read
    # One plan from the first call, for a statement whose best plan is the same for every value but
    # whose estimates vary with them (a list of ids): PL/pgSQL would otherwise plan each call anew.
    generic: bool = False

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
        """The statement the case service sends: the function's rows, bound as the statement's were.
        Each value is cast to its parameter's type, as the statement's column would take it: the
        function is then found whatever type the driver gave the value (a small int, an empty list)."""
        holders = [f"%({n})s" for n, _ in self.params] if self.named else ["%s" for _ in self.params]
        return self._call(holders)

    def call_with(self, values: Mapping[str, str]) -> str:
        """The same call with an SQL expression in place of each parameter, by the parameter's name:
        the statement as a tool that binds its own values sends it (a pgbench script's variables)."""
        return self._call([f"({values[n]})" for n, _ in self.params])

    def _call(self, holders: list[str]) -> str:
        args = ", ".join(f"{h}::{t}" for h, (_, t) in zip(holders, self.params, strict=True))
        return f"SELECT * FROM {self.function}({args})" if self.returns else f"SELECT {self.function}({args})"

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
        returns, run = (f"TABLE ({columns})", "    RETURN QUERY\n") if self.returns else ("void", "")
        setting = " SET plan_cache_mode = force_generic_plan" if self.generic else ""
        # The returned columns are variables of the function too; the statement means its tables'.
        return (f"CREATE OR REPLACE FUNCTION {self.function}({params}) RETURNS {returns}\n"
                f"LANGUAGE plpgsql {self.volatility} SECURITY INVOKER{setting} AS $planned$\n"
                f"#variable_conflict use_column\nBEGIN\n{run}{self.body()};\nEND $planned$")


def registry() -> tuple[Planned, ...]:
    """Every planned statement of the case service (imported here: the modules use this one)."""
    from core_app import db
    from core_app.dedup import decisions, search
    from core_app.repo import cases, deadline_steps

    return (db.BEGIN_AS_ACTOR, db.BEGIN_WITHOUT_BUDGET, cases.CASE_FILE, cases.CASE_ROW, cases.UNIT_INBOX,
            cases.OVERDUE, search.ROWS, cases.INSERT_PARTY, cases.INSERT_PETITION, decisions.CLAIM,
            deadline_steps.UPSERT, deadline_steps.END)


def install(conn: psycopg.Connection[Any], statements: tuple[Planned, ...] | None = None) -> list[str]:
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
