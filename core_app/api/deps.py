"""What a route needs: the database, the rulebook, and the officer acting."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import Request
from psycopg import AsyncConnection

from core_app import gate
from core_app.db import Database
from core_app.repo.cases import RuleBook

# The gate decides who is acting, for the API as for the pages.
acting = gate.acting
require_role = gate.require
token_of = gate.token_of


def database(request: Request) -> Database:
    return request.app.state.db


async def rulebook(request: Request, conn: AsyncConnection[Any]) -> RuleBook:
    """The rulebook as the database holds it now (the host's copy is reloaded when a rule changed)."""
    return await request.app.state.rulebooks.current(conn)


def today(request: Request) -> date:
    # Tests and drills may pin the clock; production uses the server's date (Asia/Ho_Chi_Minh).
    return request.app.state.clock()
