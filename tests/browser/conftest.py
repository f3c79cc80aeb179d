"""Headless Chromium (Debian's package) driven by Playwright; screenshots go to test-output/screenshots/."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEST_PASSWORD, own_address

SHOTS = ROOT / "test-output" / "screenshots"


@pytest.fixture
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


@pytest.fixture
def open_as(browser, server: str, make_account: Callable[..., str]) -> Iterator[Callable[..., object]]:
    """A fresh browser context logged in as a new officer of `unit` with `roles` (None: a citizen)."""
    contexts = []

    def make(unit: str | None = None, roles: list[str] | None = None, clearance: int = 0, lang: str = "vi"):
        ctx = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900}, locale="vi-VN",
                                  extra_http_headers={"X-Real-IP": own_address()})
        contexts.append(ctx)
        page = ctx.new_page()
        # generous: in `make test` the lab is built beside these tests on the same two cores, and a
        # login (argon2) then takes seconds; a wait, not a measure
        page.set_default_timeout(60_000)
        if lang != "vi":
            page.goto(f"/lang/{lang}?next=/login")
        if unit:
            page.goto("/login")
            page.fill("#f-username", make_account(unit, roles or ["reception"], clearance))
            page.fill("#f-password", TEST_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/app")
        return page

    yield make
    for ctx in contexts:
        ctx.close()
