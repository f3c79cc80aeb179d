"""Bounded waits: the timeouts every connection to the database sets when it opens.

A statement, a lock wait and a transaction left idle each end with a clear error instead of
holding a request, a lock or a connection for ever. They travel as libpq `options`, so they hold
from the first statement whatever the pool or the command does, and no role attribute (which
would need CREATEROLE) is involved. The database's own defaults (migration 0007) are a looser
net under sessions that set nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from core_app.settings import OperatorSettings


def session_options(statement_ms: int, lock_ms: int, idle_in_transaction_ms: int) -> str:
    return (f"-c statement_timeout={statement_ms} -c lock_timeout={lock_ms} "
            f"-c idle_in_transaction_session_timeout={idle_in_transaction_ms}")


# How long opening a connection may take (seconds, libpq's connect_timeout): a host that does not
# answer is an error, not a hang.
CONNECT_TIMEOUT_S = 10

# Operator jobs as the owner (migrations, imports, seeding): a long statement may be legitimate (an
# index over millions of rows); a wait for a lock or a transaction left open is not.
OWNER_OPTIONS = session_options(3_600_000, 30_000, 300_000)
# Reading jobs (`kntc audit verify|anchor`): long reads, no lock worth waiting for.
READER_OPTIONS = session_options(3_600_000, 5_000, 300_000)


def app_options(settings: OperatorSettings) -> str:
    """The application role's waits (its pool, and `kntc` commands that connect as it)."""
    return session_options(settings.statement_timeout_ms, settings.lock_timeout_ms,
                           settings.idle_in_transaction_timeout_ms)


# The application role's waits as PostgreSQL names them (pg_settings, milliseconds).
APP_WAITS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")


def app_waits(settings: OperatorSettings) -> dict[str, int]:
    return dict(zip(APP_WAITS, (settings.statement_timeout_ms, settings.lock_timeout_ms,
                                settings.idle_in_transaction_timeout_ms), strict=True))


def app_connection(settings: OperatorSettings) -> dict[str, Any]:
    """psycopg's keyword arguments for a connection as the application role (or the login role).

    Straight to PostgreSQL (through HAProxy), the waits travel as `options` and every statement is
    prepared on the server from its first use. Through PgBouncer in transaction mode (Debian 12's
    1.18) neither can: it refuses the `options` startup parameter, and a statement prepared on one
    server connection is unknown on the next. There the waits are PgBouncer's `connect_query`
    (rendered from the same variables), which `check_waits` verifies when the pool opens.
    """
    if settings.database_pooler == "pgbouncer":
        return {"connect_timeout": CONNECT_TIMEOUT_S, "prepare_threshold": None}
    return {"connect_timeout": CONNECT_TIMEOUT_S, "prepare_threshold": 0, "options": app_options(settings)}


class WaitsNotSet(RuntimeError):
    pass


WAITS_SQL = "SELECT name, setting::bigint FROM pg_settings WHERE name = ANY(%s)"


def waits_problem(got: dict[str, int], settings: OperatorSettings) -> str | None:
    """What is wrong with the waits a server connection has (pg_settings, milliseconds), or None."""
    wrong = {k: (got.get(k), v) for k, v in app_waits(settings).items() if got.get(k) != v}
    if not wrong:
        return None
    shown = ", ".join(f"{k} is {have} ms, not {want}" for k, (have, want) in sorted(wrong.items()))
    return (f"the connection pooler's server connections do not bound the waits ({shown}): "
            "set its connect_query from the same values (role pgbouncer)")


async def check_waits(conn: AsyncConnection[Any], settings: OperatorSettings) -> None:
    """Refuse to serve through a pooler whose server connections do not bound the waits as set."""
    from psycopg.rows import tuple_row

    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(WAITS_SQL, (list(APP_WAITS),))
    problem = waits_problem(dict(await cur.fetchall()), settings)
    if problem:
        raise WaitsNotSet(problem)
