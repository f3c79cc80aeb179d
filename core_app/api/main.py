"""The JSON API: its routers and its error answers. The application is assembled in core_app.app."""

from __future__ import annotations

from fastapi import FastAPI

from core_app.api import errors, throttling, v1
from core_app.api.routes import accounts, auth, cases, deadlines, dedup, notify, public, receptions, search, units


def install(app: FastAPI) -> None:
    errors.install(app)
    throttling.install(app)  # a budget per session or address on /api/*; 429 past it
    for module in (public, auth, units, receptions, cases, deadlines, accounts, dedup, search, notify):
        app.include_router(module.router)
    v1.install(app)  # the exchange API for connected systems (its own OpenAPI document)


def app_factory() -> FastAPI:
    """Kept for launchers that still name this module; the application lives in core_app.app."""
    from core_app.app import app_factory as factory

    return factory()
