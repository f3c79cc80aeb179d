"""Command-line values the load tools share, each refused in one line when it is not what it says."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def at_least_one(what: str) -> Callable[[str], int]:
    """An argparse type: a whole number of `what`, 1 or more."""

    def parse(text: str) -> int:
        n = int(text) if text.isdigit() else 0
        if n < 1:
            raise argparse.ArgumentTypeError(f"expected a whole number of {what}, at least 1: {text!r}")
        return n

    return parse
