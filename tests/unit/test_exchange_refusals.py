"""The bounded log of refusals before authentication: a flood of any size writes a few lines, and
what repeated is told once the window ends."""

from __future__ import annotations

import logging

import pytest

from core_app.exchange.refusals import Book, client_shape


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "kntc.exchange.refused"]


def test_a_flood_from_one_source_writes_one_line_then_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    book = Book(window_s=60, lines=20, clock=clock)
    with caplog.at_level(logging.WARNING, logger="kntc.exchange.refused"):
        for _ in range(10_000):
            book.note("invalid_token", "203.0.113.7", lambda: "via=gateway")
        assert len(messages(caplog)) == 1
        clock.now += 61
        book.note("no_token", "198.51.100.2", lambda: "via=gateway")
    first, summary, next_window = messages(caplog)
    assert "reason=invalid_token source=203.0.113.7 via=gateway" in first
    assert summary.startswith("exchange: 9999 more refusals") and "invalid_token from 203.0.113.7 (10000)" in summary
    assert "reason=no_token source=198.51.100.2" in next_window


def test_many_sources_write_at_most_the_lines_of_a_window_and_count_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    book = Book(window_s=60, lines=5, keys=100, clock=clock)
    with caplog.at_level(logging.WARNING, logger="kntc.exchange.refused"):
        for i in range(1000):  # a spray from 1,000 addresses
            book.note("no_certificate", f"10.0.{i // 250}.{i % 250}", lambda: "")
        assert len(messages(caplog)) == 5
        clock.now += 60
        book.note("no_certificate", "10.9.9.9", lambda: "")
    summary = messages(caplog)[5]
    # 1,000 refusals, 5 of them written: 995 told here, of which 900 came from sources beyond the count.
    assert summary.startswith("exchange: 995 more refusals") and "from 100 sources (+900 beyond the count)" in summary


@pytest.mark.parametrize(
    ("asked", "logged"),
    [("toa-an-hn", "toa-an-hn"), (None, "-"), ("x\nreason=forged", "(not a client id)"), ("A" * 300, "(not a client id)")],
)
def test_a_client_id_is_logged_only_with_the_shape_of_one(asked: str | None, logged: str) -> None:
    assert client_shape(asked) == logged
