"""The case service's own metrics for Prometheus: requests and their latency per route, and how full
the database pools are.

A host runs several granian workers, so the figures live in files the workers share
(prometheus-client's multiprocess mode: `kntc serve` sets PROMETHEUS_MULTIPROC_DIR to an empty
folder before the workers start); a single process (tests, `--dev`) uses the default registry.

`/metrics` answers only a direct call from the host itself (the monitoring host reaches it through
nginx's metrics listener, which passes no client address): a request that came through the public
entry carries X-Real-IP and gets the same 404 as any unknown path. The figures say how busy each
route is, nothing of any case or officer.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The latency budget is 1 s at p95 (the KntcAppSlow alert): buckets dense around it.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)

REQUESTS = Counter("kntc_http_requests_total", "Requests answered, by route template, method and status.",
                   ["route", "method", "status"])
LATENCY = Histogram("kntc_http_request_duration_seconds", "Time to answer, by route template and method.",
                    ["route", "method"], buckets=BUCKETS)
POOL = Gauge("kntc_db_pool_connections", "Connections of a database pool: open (size), idle, maximum.",
             ["pool", "state"], multiprocess_mode="livesum")
POOL_WAITING = Gauge("kntc_db_pool_requests_waiting", "Requests waiting for a pooled connection.",
                     ["pool"], multiprocess_mode="livesum")


def _route(scope: Scope) -> str:
    """The route's template ("/api/cases/{code}"), so that codes and ids do not each make a series."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "static" if scope.get("path", "").startswith("/static/") else "unmatched"


# The pools' figures are read at most once a second per process: Prometheus scrapes every 15 s, and
# eight gauge writes to the shared files on every request were 6 % of the samples of a profile of `/livez`.
POOLS_EVERY_S = 1.0


def _pools(app: Any) -> None:
    db = getattr(getattr(app, "state", None), "db", None)
    if db is None:
        return
    for name, pool in (("app", db.pool), ("auth", db.auth_pool)):
        stats = pool.get_stats()
        POOL.labels(name, "size").set(stats.get("pool_size", 0))
        POOL.labels(name, "idle").set(stats.get("pool_available", 0))
        POOL.labels(name, "max").set(stats.get("pool_max", 0))
        POOL_WAITING.labels(name).set(stats.get("requests_waiting", 0))


class Measured:
    """Counts and times every HTTP request (plain ASGI: the body passes through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pools_at = float("-inf")
        # Each series' child, looked up once: labels() takes a lock and builds its key on every call.
        self.counted: dict[tuple[str, str, int], Any] = {}
        self.timed: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route, method = _route(scope), scope["method"]
            counter = self.counted.get((route, method, status))
            if counter is None:
                counter = self.counted[route, method, status] = REQUESTS.labels(route, method, str(status))
            counter.inc()
            timer = self.timed.get((route, method))
            if timer is None:
                timer = self.timed[route, method] = LATENCY.labels(route, method)
            now = time.perf_counter()
            timer.observe(now - start)
            if now - self.pools_at >= POOLS_EVERY_S:
                self.pools_at = now
                _pools(scope.get("app"))


def _direct(request: Request) -> bool:
    peer = request.client.host if request.client else ""
    forwarded = any(h in request.headers for h in ("x-real-ip", "x-forwarded-for", "forwarded"))
    return peer in ("127.0.0.1", "::1") and not forwarded


async def endpoint(request: Request) -> Response:
    if not _direct(request):
        raise HTTPException(404)
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
