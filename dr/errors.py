"""Errors that an operator reads: one line, Vietnamese first, each with its own exit code."""

from __future__ import annotations


class DrError(RuntimeError):
    """A failure that `kntc-dr` reports in one line and exits with `exit_code`."""

    exit_code = 1


class ConfigError(DrError):
    exit_code = 2


class RestoreRefused(DrError):
    """The target data directory belongs to a running or unfenced cluster: nothing was touched."""

    exit_code = 3


class VerificationFailed(DrError):
    exit_code = 4


class NotInTime(VerificationFailed):
    """Something awaited (a leader, a write, a replica catching up) did not happen before its deadline."""


class PostgresError(DrError):
    """pg_ctl, initdb or a SQL session failed."""

    exit_code = 5


def one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
