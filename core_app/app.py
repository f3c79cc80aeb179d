"""The case service's ASGI application, assembled above its two faces.

The API (`core_app.api`) and the web pages (`core_app.web`) are siblings: both act through the one
gate (`core_app.gate`) and the repository layer (`core_app.repo`); neither installs the other.
What holds for every request is added here: refusals of the gate, input the database could not
store, security headers and logging that keeps secrets out.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import swagger_ui_bundle
from fastapi import Depends, FastAPI, Request
from fastapi.datastructures import Default
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, ORJSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from core_app import __version__, logsafe, metrics, web
from core_app.api import errors as api_errors
from core_app.api import main as api
from core_app.bad_input import BadInput, reject_nul
from core_app.call_counts import CallCounts
from core_app.db import Database
from core_app.domain import deadlines
from core_app.gate import Refused
from core_app.read_retry import ReadRetried
from core_app.repo.rules import RulebookCache
from core_app.settings import Settings, get_settings
from core_app.web import guard

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
STATIC = Path(__file__).resolve().parent / "static"


def vietnam_today() -> date:
    return datetime.now(VN_TZ).date()


def create_app(settings: Settings | None = None, clock: Callable[[], date] = vietnam_today) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        deadlines.warm(clock())
        db = Database(settings)
        await db.open()
        app.state.db = db
        app.state.call_counts.start(db)
        try:
            yield
        finally:
            await app.state.call_counts.stop(db)
            await db.close()

    app = FastAPI(
        title="KNTC — Cơ sở dữ liệu quốc gia về tiếp công dân, xử lý đơn, giải quyết khiếu nại, tố cáo",
        version=__version__,
        # Wrapped in Default(): routes with a return type then serialise straight to JSON bytes in
        # pydantic-core (one pass, same output); routes without one still answer through orjson.
        default_response_class=Default(ORJSONResponse),
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # Every route, API or page: a NUL character is bad input, refused before any SQL runs.
        dependencies=[Depends(reject_nul)],
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.rulebooks = RulebookCache()
    app.state.call_counts = CallCounts("api_session")
    # Innermost of the middleware: inside the budget (a read retried counts once).
    app.add_middleware(ReadRetried)
    api.install(app)   # the JSON API and its error answers
    web.install(app)   # the officer and citizen pages; on their paths errors are pages

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        if web.is_web(request.url.path):
            return web.refusal(request, exc)
        return api_errors.refusal(exc)

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> Response:
        if web.is_web(request.url.path):
            return web.bad_input(request, exc)
        return api_errors.bad_input(exc)

    app.add_middleware(guard.SecurityHeaders)

    # API docs with the Swagger UI files shipped in a Python package: no CDN.
    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="KNTC API",
                                   swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css",
                                   swagger_favicon_url="/static/swagger/favicon-32x32.png")

    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)
    # Outermost: every answer is counted, the throttle's and the gate's refusals included.
    app.add_middleware(metrics.Measured)
    return app


def app_factory() -> FastAPI:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logsafe.install()
    return create_app()
