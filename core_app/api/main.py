"""The case service's ASGI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.datastructures import Default
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, ORJSONResponse
from fastapi.staticfiles import StaticFiles

from core_app import __version__, web
from core_app.api import errors, throttling
from core_app.api.routes import accounts, auth, cases, deadlines, dedup, public, receptions, search, units
from core_app.db import Database
from core_app.repo.cases import load_rulebook
from core_app.settings import Settings, get_settings

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
STATIC = Path(__file__).resolve().parent.parent / "static"


def vietnam_today() -> date:
    return datetime.now(VN_TZ).date()


def create_app(settings: Settings | None = None, clock: Callable[[], date] = vietnam_today) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings)
        await db.open()
        async with db.transaction() as conn:
            app.state.rulebook = await load_rulebook(conn)
        app.state.db = db
        try:
            yield
        finally:
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
    )
    app.state.settings = settings
    app.state.clock = clock
    errors.install(app)
    throttling.install(app)  # a budget per session or address on /api/*; 429 past it
    for module in (public, auth, units, receptions, cases, deadlines, accounts, dedup, search):
        app.include_router(module.router)
    web.install(app)  # the officer and citizen web pages (HTML), their error pages and security headers

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

    return app


def app_factory() -> FastAPI:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app()
