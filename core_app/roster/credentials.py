"""The one-time passwords of a roster, for the importer's eyes only."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from core_app.roster.load import Created

HEADER = ("username", "full_name", "unit_code", "initial_password")


def as_csv(created: list[Created]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for c in created:
        w.writerow((c.username, c.full_name, c.unit_code, c.initial_password or ""))
    return ("\ufeff" + buf.getvalue()).encode()  # the BOM: Excel then reads the Vietnamese names right


def write_private(path: Path, created: list[Created]) -> None:
    """Created with mode 0600 before a byte is written, and never over an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(as_csv(created))
