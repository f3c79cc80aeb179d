"""The driver's floor: the app CPU of an officer request's round trips with nothing in them.

An officer's read is BEGIN, the session statement, the endpoint's statement and COMMIT, sent by
psycopg on uvloop as `kntc serve` sends them: through PgBouncer each statement a round trip of its
own, straight to PostgreSQL BEGIN pipelined with the session statement. This times the same round
trips carrying trivial statements, one client, in this process. bench-app prints it beside
`GET /livez` (the framework's floor): together they are the least app CPU any request that reads the
database can cost on this stack, whatever its own code does.

    python -m loadtests.driver_floor DSN [--mode pooler|pipeline]     # prints {"app_cpu_ms": ...}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import psycopg
import uvloop
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from core_app.db import pipeline, without_pipelines
from loadtests.arguments import at_least_one

TRIVIAL = "SELECT 1 AS one"
WARM_UP = 200


async def one_request(conn: AsyncConnection[Any]) -> None:
    """BEGIN, two reads whose rows are fetched (the session's, the endpoint's), COMMIT: as `Database.acting`."""
    async with pipeline(conn), conn.transaction():
        await (await conn.execute(TRIVIAL)).fetchone()
        await (await conn.execute(TRIVIAL)).fetchone()


async def measure(dsn: str, pooler: bool, requests: int) -> float:
    """CPU milliseconds of this process per request, after a warm-up."""
    conn = await AsyncConnection.connect(dsn, row_factory=dict_row, autocommit=False, connect_timeout=10)
    if pooler:
        await without_pipelines(conn)
    try:
        for _ in range(WARM_UP):
            await one_request(conn)
        start = time.process_time()
        for _ in range(requests):
            await one_request(conn)
        return 1000 * (time.process_time() - start) / requests
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dsn")
    p.add_argument("--mode", choices=("pooler", "pipeline"), default="pooler")
    p.add_argument("--requests", type=at_least_one("requests"), default=3000)
    args = p.parse_args(argv)
    try:
        ms = uvloop.run(measure(args.dsn, args.mode == "pooler", args.requests))
    except psycopg.Error as exc:
        print(f"driver-floor: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    print(json.dumps({"app_cpu_ms": round(ms, 3), "mode": args.mode, "requests": args.requests}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
