"""Headless Chromium (Debian's package) driven by Playwright; screenshots go to test-output/screenshots/."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEST_PASSWORD, own_address

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    # A browser test that cannot run must fail loudly: `make test` installs both.
    from playwright import sync_api

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: KNTC_WITH_BROWSER=1 infra/host/install-deps.sh")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


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
        page.set_default_timeout(15_000)
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
