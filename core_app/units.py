"""The unit tree: current two-tier units, legacy three-tier units, and the bodies at each level.

Current units come from `vietnam-provinces` (34 provinces, 3,321 communes, official codes as
of its data date); legacy units (63 provinces, 696 districts, 10,035 wards) and the 2025
old-to-new mapping come from `vietnamadminunits`. The two packages disagree on 114 commune codes,
so the mapping is joined to the official list by province and name. We read the packages' data
directly: vietnamadminunits' address converter would geocode over the network.
"""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import vietnamadminunits
from vietnam_provinces import Province
from vietnam_provinces.lookup import WARD_MAPPING

REFORM_DAY = date(2025, 7, 1)
LEGACY_FROM = date(2018, 1, 1)

# Bodies that sit beside the administrative unit at each level (code suffix, kind, name prefix).
PROVINCE_BODIES = (
    ("TT", "inspectorate", "Thanh tra"),
    ("DANG", "party", "Ủy ban Kiểm tra Tỉnh ủy/Thành ủy"),
    ("HDND", "people_council", "HĐND và Đoàn ĐBQH"),
    ("TAND", "court", "Tòa án nhân dân"),
    ("VKSND", "procuracy", "Viện kiểm sát nhân dân"),
    ("MTTQ", "front", "Ủy ban MTTQ Việt Nam"),
)
COMMUNE_BODIES = (
    ("DANG", "party", "Đảng ủy"),
    ("HDND", "people_council", "HĐND"),
    ("MTTQ", "front", "Ủy ban MTTQ Việt Nam"),
)
CENTRAL_BODIES = (
    ("TTCP", "government_inspectorate", "Thanh tra Chính phủ"),
    ("TW-UBKT", "party", "Ủy ban Kiểm tra Trung ương"),
    ("TW-QH", "people_council", "Quốc hội (Ban Dân nguyện)"),
    ("TW-TANDTC", "court", "Tòa án nhân dân tối cao"),
    ("TW-VKSNDTC", "procuracy", "Viện kiểm sát nhân dân tối cao"),
    ("TW-MTTQ", "front", "Ủy ban Trung ương MTTQ Việt Nam"),
)


@dataclass
class UnitRow:
    id: int
    code: str
    name: str
    kind: str
    level: str
    parent_id: int | None
    path: str
    admin_code: str | None
    valid_from: date
    valid_to: date | None
    successor_id: int | None = None


def name_key(name: str) -> str:
    """Accents, tone-mark placement (Thủy/Thuỷ), case, spacing and dashes do not matter."""
    s = unicodedata.normalize("NFD", name.replace("Đ", "D").replace("đ", "d"))
    s = "".join(c for c in s if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]", "", s.lower())


def _data_dir() -> Path:
    return Path(vietnamadminunits.__file__).parent / "data"


class _Builder:
    def __init__(self) -> None:
        self.rows: list[UnitRow] = []
        self.by_code: dict[str, UnitRow] = {}

    def add(self, code: str, name: str, kind: str, level: str, parent: UnitRow | None,
            admin_code: str | None = None, valid_from: date = LEGACY_FROM,
            valid_to: date | None = None) -> UnitRow:
        uid = len(self.rows) + 1
        path = f"{parent.path}.u{uid}" if parent else f"u{uid}"
        row = UnitRow(uid, code, name, kind, level, parent.id if parent else None, path, admin_code,
                      valid_from, valid_to)
        self.rows.append(row)
        self.by_code[code] = row
        return row


def build_units(with_bodies: bool = True, with_legacy: bool = True) -> list[UnitRow]:
    """Every unit, parents before children, with ids and ltree paths assigned."""
    b = _Builder()
    nation = b.add("VN", "Cả nước", "nation", "central", None)
    for code, kind, name in CENTRAL_BODIES:
        b.add(code, name, kind, "central", nation)

    db = sqlite3.connect(_data_dir() / "dataset.db")
    try:
        mapping_side = db.execute(
            "SELECT DISTINCT provinceCode, province, provinceKey, wardCode, ward, wardKey FROM admin_units").fetchall()
        legacy = db.execute(
            "SELECT DISTINCT provinceCode, province, provinceKey, districtCode, district, districtKey, "
            "wardCode, ward, wardKey FROM admin_units_legacy WHERE wardCode IS NOT NULL "
            "ORDER BY provinceCode, districtCode, wardCode").fetchall()
    finally:
        db.close()

    wards_by_province: dict[int, list] = {}
    for w in WARD_MAPPING.values():
        wards_by_province.setdefault(int(w.province_code), []).append(w)
    by_name: dict[tuple[str, str], UnitRow] = {}
    for province in sorted(Province.iter_all(), key=lambda p: int(p.code)):
        pcode = f"{int(province.code):02d}"
        prov = b.add(f"T{pcode}", province.name, "province", "province", nation, pcode, REFORM_DAY)
        if with_bodies:
            for suffix, kind, prefix in PROVINCE_BODIES:
                b.add(f"T{pcode}-{suffix}", f"{prefix} {province.name}", kind, "province", prov, None, REFORM_DAY)
        for w in sorted(wards_by_province.get(int(province.code), []), key=lambda w: int(w.code)):
            wcode = f"{int(w.code):05d}"
            ward = b.add(f"X{wcode}", w.name, "commune", "commune", prov, wcode, REFORM_DAY)
            by_name[(pcode, name_key(w.name))] = ward
            if with_bodies:
                for suffix, kind, prefix in COMMUNE_BODIES:
                    b.add(f"X{wcode}-{suffix}", f"{prefix} {w.name}", kind, "commune", ward, None, REFORM_DAY)

    # vietnamadminunits' keys for the mapping, joined to the official units by name, then by code.
    new_province_by_key: dict[str, UnitRow] = {}
    new_ward_by_key: dict[tuple[str, str], UnitRow] = {}
    for pcode, _pname, pkey, wcode, wname, wkey in mapping_side:
        new_province_by_key[pkey] = b.by_code[f"T{pcode}"]
        ward = by_name.get((pcode, name_key(wname))) or b.by_code.get(f"X{wcode}")
        if ward is not None:
            new_ward_by_key[(pkey, wkey)] = ward

    if with_legacy:
        _add_legacy(b, nation, legacy, new_province_by_key, new_ward_by_key)
    return b.rows


def _add_legacy(b: _Builder, nation: UnitRow, legacy: list[tuple], new_province_by_key: dict[str, UnitRow],
                new_ward_by_key: dict[tuple[str, str], UnitRow]) -> None:
    conv = json.loads((_data_dir() / "converter_2025.json").read_text())
    old_to_new_province = {old: new for new, olds in conv["DICT_PROVINCE"].items() for old in olds}
    old_to_new_ward: dict[str, tuple[str, str]] = {}
    for new_pkey, wards in conv["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for new_wkey, olds in wards.items():
            for old in olds:
                old_to_new_ward[old] = (new_pkey, new_wkey)
    for new_pkey, splits in conv["DICT_PROVINCE_WARD_DIVIDED"].items():
        for old, options in splits.items():
            default = next((o for o in options if o["isDefaultNewWard"]), options[0] if options else None)
            if default and old not in old_to_new_ward:
                old_to_new_ward[old] = (new_pkey, default["newWardKey"])

    reform_eve = date(2025, 6, 30)
    for pcode, pname, pkey, dcode, dname, dkey, wcode, wname, wkey in legacy:
        prov = b.by_code.get(f"LT{pcode}")
        if prov is None:
            prov = b.add(f"LT{pcode}", pname, "province", "province", nation, pcode, LEGACY_FROM, reform_eve)
            succ = new_province_by_key.get(old_to_new_province.get(pkey, ""))
            prov.successor_id = succ.id if succ else None
        dist = b.by_code.get(f"LH{dcode}")
        if dist is None:
            dist = b.add(f"LH{dcode}", dname, "district", "district", prov, dcode, LEGACY_FROM, reform_eve)
            dist.successor_id = prov.successor_id  # districts were abolished: their province inherits
        if f"LX{wcode}" in b.by_code:
            continue
        ward = b.add(f"LX{wcode}", wname, "commune", "commune", dist, wcode, LEGACY_FROM, reform_eve)
        target = old_to_new_ward.get(f"{pkey}_{dkey}_{wkey}")
        new = new_ward_by_key.get(target) if target else None
        ward.successor_id = new.id if new else prov.successor_id


def copy_rows(rows: list[UnitRow]) -> Iterator[tuple]:
    for r in rows:
        yield (r.id, r.code, r.name, r.kind, r.level, r.parent_id, r.path, r.admin_code, r.valid_from,
               r.valid_to, r.successor_id)


COLUMNS = ("id", "code", "name", "kind", "level", "parent_id", "path", "admin_code", "valid_from",
           "valid_to", "successor_id")
