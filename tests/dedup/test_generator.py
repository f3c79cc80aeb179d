"""The synthetic data set: the same seed gives the same data; proportions and duplicates are there;
and the Python spelling normaliser agrees with the database's kntc.norm()."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from core_app.dedup.generator import Generator, Unit
from core_app.dedup.normalise import norm

PROVINCES = [Unit(100 + i, f"T{i:02d}", f"Tỉnh {i}", gso=f"{i:02d}") for i in range(1, 5)]
COMMUNES = [Unit(1000 + i, f"X{i:05d}", f"Xã Số {i}", PROVINCES[i % 4], f"{i:05d}") for i in range(40)]
BODIES = {p.id: Unit(p.id + 500, f"{p.code}-TT", f"Thanh tra {p.name}", p) for p in PROVINCES}
CENTRAL = Unit(2, "TTCP", "Thanh tra Chính phủ")


def rows(seed: int, n: int = 5000):
    gen = Generator(COMMUNES, BODIES, CENTRAL, seed, date(2026, 1, 1), {})
    chunks = list(gen.chunks(n, 1000))
    return gen, [r for c in chunks for r in c.cases], [r for c in chunks for r in c.parties]


def test_same_seed_same_data_other_seed_other_data():
    _, a, pa = rows(7)
    _, b, pb = rows(7)
    _, c, _ = rows(8)
    assert a == b and pa == pb
    assert a != c


def test_plausible_national_data():
    gen, cases, parties = rows(11, 20_000)
    kinds = Counter(r[2] for r in cases)
    assert 0.50 < kinds["recommendation"] / len(cases) < 0.60
    assert 0.25 < kinds["complaint"] / len(cases) < 0.35
    codes = [r[1] for r in cases]
    assert len(set(codes)) == len(codes)
    assert all(r[15] >= date(2018, 3, 15) for r in cases)
    ids = [p[5] for p in parties if p[5]]
    assert all(len(i) == 12 and i.isdigit() for i in ids)
    assert 0.6 < len(ids) / len(parties) < 0.9
    assert 0.04 < gen.stats.duplicates / len(cases) < 0.10
    # Some names are typed without diacritics, as duplicates arrive.
    assert any(p[4] == p[4].encode("ascii", "ignore").decode() for p in parties)
    assert gen.stats.petitions > len(cases)


@pytest.mark.parametrize("text", ["  Nguyễn  Văn  ĐỨC ", "NGUYEN VAN DUC", "Trần Thị Thủy\tTiên", "Phường Đội Cấn",
                                  "Khiếu nại quyết định thu hồi đất ở", "Nguye\u0302\u0303n", None])
def test_python_normaliser_agrees_with_the_database(owner_conn, text):
    assert norm(text) == owner_conn.execute("SELECT kntc.norm(%s) AS n", (text,)).fetchone()["n"]
