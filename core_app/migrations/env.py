"""Alembic environment: migrations run as the owner role (KNTC_ADMIN_DATABASE_URL)."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from core_app.waits import CONNECT_TIMEOUT_S, OWNER_OPTIONS


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("KNTC_ADMIN_DATABASE_URL")
    if not url:
        raise SystemExit("KNTC_ADMIN_DATABASE_URL is not set: the owner role's DSN is needed to migrate")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def run_migrations_online() -> None:
    # A migration waits for a lock at most OWNER_OPTIONS' lock_timeout, then fails and can be run again.
    connect_args = {"options": OWNER_OPTIONS, "connect_timeout": CONNECT_TIMEOUT_S}
    engine = create_engine(_url(), poolclass=pool.NullPool, connect_args=connect_args)
    with engine.connect() as connection:
        context.configure(connection=connection, version_table_schema="public", transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
