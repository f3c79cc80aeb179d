"""Fixtures for duplicate detection, audit, corrections and import: fresh communes per test, so
that a test's cases never meet another test's in the neighbourhood of an address."""

from __future__ import annotations

import itertools
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def communes(owner_conn: psycopg.Connection) -> Iterator[tuple[str, str]]:
    """(commune code, its province code) pairs, each handed out once, spread over provinces."""
    rows = owner_conn.execute(
        "SELECT c.code, p.code AS province FROM kntc.unit c JOIN kntc.unit p ON p.id = c.parent_id "
        "WHERE c.code ~ '^X[0-9]+$' AND c.valid_to IS NULL ORDER BY md5(c.code) LIMIT 400").fetchall()
    return iter([(r["code"], r["province"]) for r in rows])


@pytest.fixture
def commune(communes: Iterator[tuple[str, str]]) -> Callable[[], tuple[str, str]]:
    return lambda: next(communes)


_seq = itertools.count(1)


def id_number() -> str:
    """A 12-digit ID number no other test uses."""
    return f"09{next(_seq):04d}{secrets.randbelow(10**6):06d}"


@pytest.fixture
def kntc(pg_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "kntc"), *args], env={**os.environ, **pg_env}, capture_output=True,
                              text=True, timeout=300)

    return run


def fill_commune(owner_conn: psycopg.Connection, template: str, unit: str, n: int) -> None:
    """`n` more case files like `template`, each with one petitioner "Nguyễn Văn Số <i>" living
    in `unit`: a commune as crowded as the largest at national scale, in a second."""
    owner_conn.execute("""
        WITH src AS (SELECT * FROM kntc.case_file WHERE code = %(code)s),
        cases AS (
            INSERT INTO kntc.case_file (code, kind, subject, content, respondent, channel, receiving_unit_id,
                                        receiving_unit_path, handling_unit_id, handling_unit_path, received_on,
                                        lookup_secret_hash)
            SELECT src.code || '-F' || g, src.kind, 'Đề nghị cấp bản sao giấy khai sinh số ' || g, src.content,
                   src.respondent, src.channel, src.receiving_unit_id, src.receiving_unit_path,
                   src.handling_unit_id, src.handling_unit_path, src.received_on, src.lookup_secret_hash
              FROM src, generate_series(1, %(n)s) g
            RETURNING id, code)
        INSERT INTO kntc.party (case_id, role, full_name, address_unit_id)
        SELECT c.id, 'petitioner', 'Nguyễn Văn Số ' || split_part(c.code, '-F', 2), u.id
          FROM cases c, kntc.unit u WHERE u.code = %(unit)s""", {"code": template, "unit": unit, "n": n})
    owner_conn.execute("ANALYZE kntc.case_file, kntc.party")
