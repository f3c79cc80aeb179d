"""Bounded waits: the timeouts every connection to the database sets when it opens.

A statement, a lock wait and a transaction left idle each end with a clear error instead of
holding a request, a lock or a connection for ever. They travel as libpq `options`, so they hold
from the first statement whatever the pool or the command does, and no role attribute (which
would need CREATEROLE) is involved. The database's own defaults (migration 0007) are a looser
net under sessions that set nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
