"""What every `kntc` command shares: the consoles, the one-line failure, and the way to the database.

A command names the role it acts as ("owner", "app" or "readonly"); the DSN comes from
`OperatorSettings`, so a host needs only the variable of the role its commands use, and a
missing one is named in the error. Every connection opens with the role's bounded waits
(core_app.waits) and a connect timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

import typer
from rich.console import Console

from core_app.waits import CONNECT_TIMEOUT_S, OWNER_OPTIONS, READER_OPTIONS, app_connection

if TYPE_CHECKING:
    from psycopg import AsyncConnection, Connection
    from pydantic import ValidationError

    from core_app.settings import OperatorSettings

# soft_wrap: one finding per line whatever the terminal width, so that reports can be grepped.
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Role = Literal["owner", "app", "readonly"]
S = TypeVar("S", bound="OperatorSettings")

LOCAL_HINT = "for the local cluster: eval $(kntc local env)"


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with one line on stderr and a non-zero exit status."""
    err.print(f"kntc: {message}", style="red", markup=False, highlight=False)
    raise typer.Exit(code)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def load_settings(cls: type[S]) -> S:
    """The settings of `cls` from the environment, or a one-line error naming the bad variables."""
    from pydantic import ValidationError

    from core_app.settings import ENV_PREFIX

    try:
        return cls()
    except ValidationError as exc:
        fail(f"settings are missing or invalid: {_variables(exc, ENV_PREFIX)}")


def _variables(exc: ValidationError, prefix: str) -> str:
    return ", ".join(prefix + str(e["loc"][0]).upper() for e in exc.errors())


@dataclass(frozen=True)
class _RoleAccess:
    fields: tuple[str, ...]  # OperatorSettings fields holding a DSN for the role; the first one set wins
    missing: str  # the error when none is set
    # psycopg's arguments: the role's bounded waits, and what a pooler in between allows
    connection: Callable[[OperatorSettings], dict[str, Any]]


ROLES: dict[Role, _RoleAccess] = {
    "owner": _RoleAccess(
        ("admin_database_url",),
        f"KNTC_ADMIN_DATABASE_URL is not set (the owner role's DSN); {LOCAL_HINT}",
        lambda _: {"connect_timeout": CONNECT_TIMEOUT_S, "options": OWNER_OPTIONS}),
    "app": _RoleAccess(
        ("database_url",),
        f"KNTC_DATABASE_URL is not set (the application role's DSN); {LOCAL_HINT}",
        app_connection),
    # Reading needs no more than the readonly role. A backup host's one DSN is KNTC_DATABASE_URL (of
    # the readonly role there); a local checkout or the migrating host may read as the owner.
    "readonly": _RoleAccess(
        ("readonly_database_url", "database_url", "admin_database_url"),
        f"KNTC_READONLY_DATABASE_URL (or KNTC_DATABASE_URL) is not set: the readonly role's DSN; {LOCAL_HINT}",
        lambda _: {"connect_timeout": CONNECT_TIMEOUT_S, "options": READER_OPTIONS}),
}


def dsn(role: Role) -> str:
    """The DSN `role` connects with (a one-line error naming the variable when it is not set)."""
    url, _ = _target(role)
    return url


def _target(role: Role) -> tuple[str, dict[str, Any]]:
    from core_app.settings import OperatorSettings

    settings = load_settings(OperatorSettings)
    access = ROLES[role]
    url = next((v for v in (getattr(settings, f) for f in access.fields) if v), None)
    if not url:
        fail(access.missing)
    return url, access.connection(settings)


def connect(role: Role, *, autocommit: bool = False) -> Connection[dict[str, Any]]:
    """A connection as `role` with dict rows; the command ends with one line if it cannot be made."""
    import psycopg
    from psycopg.rows import dict_row

    url, kwargs = _target(role)
    try:
        return psycopg.connect(url, row_factory=dict_row, autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        fail(f"cannot connect to the database: {first_line(exc)}")


async def connect_async(role: Role, *, autocommit: bool = False) -> AsyncConnection[dict[str, Any]]:
    """The same as `connect`, for code written against psycopg's async API (the repository layer)."""
    import psycopg
    from psycopg.rows import dict_row

    url, kwargs = _target(role)
    try:
        return await psycopg.AsyncConnection.connect(url, row_factory=dict_row, autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        fail(f"cannot connect to the database: {first_line(exc)}")
