# ruff: noqa: S311  (seeded choices of made-up officers, not secrets)
"""The national roster: 162,318 officer accounts over the current unit tree, for `kntc accounts import`.

The capacity model (loadtests/capacity.py) gives three tiers of accounts with their role shares;
this module places them on the units that exist today and writes the file a personnel office
would send: CSV or XLSX, one account a row, with Vietnamese names, a username for most rows (the
importer makes the others), and an e-mail address or a phone number for some.

How the model's tiers land on the current tree (two tiers since 1 July 2025, see CAPACITY.md):

* commune tier (3 a unit in the model): every commune-level unit — the commune and its Party,
  Council and Front bodies — as the model's 40,138 units were wards × 4 bodies;
* district tier (7 a unit): districts no longer exist and import takes current units only; their
  work went to the new communes, so these officers are placed on the commune-level units too,
  which keeps their scope local;
* province tier (12 a unit): the province-level units and the central bodies, plus one unit
  administrator in each province and one at the centre (counted within the tier).

In every tier external readers sit in the bodies that only read (Party, Council and National
Assembly, court, procuracy, Front); the other roles in any unit of the tier. Tier totals and role
counts are the model's shares rounded by largest remainder, so 162,318 accounts give exactly the
model's 120,414 / 34,104 / 7,800. A smaller roster is the same model scaled down in one province
(Hà Nội unless --province says otherwise).

Beside the roster the generator writes its key (`<name>.key.csv`): each account's tier, which the
roster's columns cannot say (a commune unit holds officers of two tiers). The load suite reads it
with the importer's credentials file to pick officers per tier and role.

    python -m loadtests.roster --accounts 162318 --out loadtests/reports/roster/national.csv
    python -m loadtests.roster --accounts 218 --out small.xlsx --units-from-db
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loadtests import capacity

NATIONAL = capacity.Model().total_accounts()
# Bodies that read cases (the documents' "other bodies"); readers of every tier sit there.
READER_KINDS = frozenset({"party", "people_council", "court", "procuracy", "front"})
# Clearance 1 lets a head read confidential case files (and makes the second factor compulsory).
CLEARANCE = {"head": 1}
HEADER = ("ma_don_vi", "ho_ten", "ten_dang_nhap", "vai_tro", "muc_mat", "email", "dien_thoai")
KEY_HEADER = ("unit_code", "full_name", "username", "level", "roles", "clearance")
USERNAME_SHARE = 0.7  # the other rows leave the username to the importer
EMAIL_SHARE = 0.4
PHONE_SHARE = 0.5


class RosterError(Exception):
    """The roster cannot be made as asked; the message says why, in one line."""


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    kind: str
    level: str  # central, province or commune
    province: str | None  # code of the province the unit lies in (None at the centre)


@dataclass(frozen=True)
class Account:
    unit: str
    full_name: str
    username: str
    level: str  # the capacity model's tier: commune, district or province
    roles: tuple[str, ...]
    clearance: int
    email: str
    phone: str


# -- units ---------------------------------------------------------------------------------------
def units_from_rows(rows: Iterable[tuple[int, str, str, str, str, int | None]]) -> list[Unit]:
    """Units from (id, code, name, kind, level, parent id) of the current tree, sorted by code."""
    rows = list(rows)
    by_id = {r[0]: r for r in rows}

    def province_of(row: tuple[int, str, str, str, str, int | None]) -> str | None:
        while row is not None:
            if row[3] == "province":
                return row[1]
            row = by_id.get(row[5]) if row[5] is not None else None
        return None

    return sorted((Unit(r[1], r[2], r[3], r[4], province_of(r)) for r in rows), key=lambda u: u.code)


def units_offline() -> list[Unit]:
    """The tree `kntc seed-units` loads, built from the same packages, without a database.

    The one place the load suite reads core_app: the unit tree is data the app ships, and the
    roster must name exactly its codes; importing its builder is the only way to have them offline.
    """
    from core_app.units import build_units

    return units_from_rows((r.id, r.code, r.name, r.kind, r.level, r.parent_id)
                           for r in build_units() if r.valid_to is None)


@dataclass
class Taken:
    """What a database's accounts already hold, which a new roster for it must not repeat: another
    roster imported before (a second province, a load run's officers) would otherwise meet a
    username, or a nameless row the same person, and the importer rightly refuses the file."""

    usernames: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    names: dict[str, set[str]] = field(default_factory=dict)  # unit code -> full names


def units_from_db(dsn: str) -> tuple[list[Unit], Taken]:
    """The current units of a database and what its accounts hold (the owner's DSN)."""
    import psycopg

    taken = Taken()
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            rows = conn.execute("SELECT id, code, name, kind, level, parent_id FROM kntc.unit "
                                "WHERE valid_to IS NULL").fetchall()
            for username, email, phone, unit, name in conn.execute(
                    "SELECT a.username, a.email, a.phone, u.code, a.full_name "
                    "FROM kntc.account a JOIN kntc.unit u ON u.id = a.unit_id"):
                taken.usernames.add(username)
                taken.emails.add(email or "")
                taken.phones.add(phone or "")
                taken.names.setdefault(unit, set()).add(unicodedata.normalize("NFC", name))
    except psycopg.Error as exc:
        raise RosterError(f"cannot read the units: {str(exc).strip().splitlines()[0]}") from exc
    if not rows:
        raise RosterError("the database has no units: run `kntc seed-units` first")
    return units_from_rows(rows), taken


# -- the plan: how many accounts of each tier and role ---------------------------------------------
def apportion(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Integers in proportion to `shares` that sum to `total` (largest remainder, ties by name)."""
    weight = sum(shares.values())
    if total <= 0 or weight <= 0:
        return dict.fromkeys(shares, 0)
    exact = {k: total * v / weight for k, v in shares.items()}
    out = {k: int(x) for k, x in exact.items()}
    for k in sorted(exact, key=lambda k: (out[k] - exact[k], k))[: total - sum(out.values())]:
        out[k] += 1
    return out


def tier_totals(accounts: int) -> dict[str, int]:
    model = capacity.Model()
    return apportion(accounts, {lv: model.level_units[lv] * model.accounts_per_unit[lv] for lv in capacity.LEVELS})


def role_counts(accounts: int, admins: int) -> dict[str, dict[str, int]]:
    """{tier: {role: count}}; the unit administrators come out of the province tier first."""
    out: dict[str, dict[str, int]] = {}
    for level, total in tier_totals(accounts).items():
        taken = min(admins, total) if level == "province" else 0
        shares = {r: s for r, s in capacity.ROLE_SHARES[level].items() if s}
        out[level] = apportion(total - taken, shares)
        if taken:
            out[level]["unit_admin"] = taken
    return out


def interleave(counts: dict[str, int]) -> list[str]:
    """Roles spread evenly along a sequence (each role's k-th slot at (k + ½) / count), so any run
    of consecutive slots holds the shares in small."""
    slots = [((k + 0.5) / n, i, role) for i, (role, n) in enumerate(counts.items()) for k in range(n)]
    return [role for _, _, role in sorted(slots)]


def deal(roles: list[str], units: Sequence[Unit], rng: random.Random) -> list[tuple[Unit, str]]:
    """Give each unit an equal run of `roles` (one more to the first few, in a seeded order)."""
    if not roles:
        return []
    if not units:
        raise RosterError(f"no unit to place {len(roles)} accounts on")
    order = list(units)
    rng.shuffle(order)
    base, extra = divmod(len(roles), len(order))
    out, i = [], 0
    for n, unit in enumerate(order):
        take = base + (n < extra)
        out += [(unit, role) for role in roles[i:i + take]]
        i += take
    return out


# -- names, usernames, contacts --------------------------------------------------------------------
# Family names with their approximate shares of the population (per cent); the rest share 1.5.
FAMILY = {"Nguyễn": 38.4, "Trần": 12.1, "Lê": 9.5, "Phạm": 7.0, "Hoàng": 3.5, "Huỳnh": 1.6, "Phan": 4.5,
          "Vũ": 2.5, "Võ": 1.4, "Đặng": 2.1, "Bùi": 2.0, "Đỗ": 1.4, "Hồ": 1.3, "Ngô": 1.3, "Dương": 1.0,
          "Lý": 0.5, "Đinh": 0.6, "Trương": 0.5, "Lâm": 0.4, "Mai": 0.4, "Đào": 0.4, "Đoàn": 0.4,
          "Cao": 0.3, "Lương": 0.3, "Tạ": 0.2, "Hà": 0.3, "Chu": 0.2, "Tô": 0.2, "Kiều": 0.1, "Thái": 0.1,
          "Lưu": 0.2, "Triệu": 0.1, "Phùng": 0.1, "Nông": 0.2, "Lò": 0.1, "Giàng": 0.1, "Thào": 0.1,
          "Quách": 0.1, "La": 0.1}
MIDDLE = {"m": ("Văn", "Văn", "Văn", "Hữu", "Đức", "Minh", "Quang", "Công", "Thành", "Xuân", "Ngọc", "Mạnh",
                "Tiến", "Trọng", "Duy", "Quốc", "Thanh", "Đình", "Bá", "Việt", "Hải", "Khánh", "Anh"),
          "f": ("Thị", "Thị", "Thị", "Thị", "Thu", "Ngọc", "Thanh", "Minh", "Kim", "Hồng", "Bích", "Phương",
                "Thúy", "Mai", "Hoài", "Diệu", "Khánh", "Hải", "Quỳnh", "Mỹ", "Tuyết", "Lan")}
GIVEN = {"m": ("An", "Anh", "Bảo", "Bình", "Cường", "Chiến", "Công", "Dũng", "Duy", "Đạt", "Đông", "Đức",
               "Giang", "Hải", "Hậu", "Hiếu", "Hiệp", "Hòa", "Hoàng", "Huy", "Hùng", "Hưng", "Khải", "Khang",
               "Khánh", "Khoa", "Kiên", "Lâm", "Long", "Lộc", "Lợi", "Lực", "Minh", "Nam", "Nghĩa", "Nhân",
               "Phong", "Phú", "Phúc", "Quang", "Quân", "Quý", "Quyết", "Sang", "Sơn", "Tài", "Tâm", "Thái",
               "Thắng", "Thành", "Thịnh", "Thuận", "Toàn", "Trí", "Trung", "Trường", "Tú", "Tuấn", "Tùng",
               "Việt", "Vinh", "Vũ"),
         "f": ("An", "Anh", "Châu", "Chi", "Dung", "Duyên", "Diệp", "Giang", "Hà", "Hạnh", "Hằng", "Hiền",
               "Hoa", "Hồng", "Huệ", "Hương", "Hường", "Huyền", "Lan", "Lệ", "Liên", "Linh", "Loan", "Ly",
               "Mai", "My", "Nga", "Ngân", "Ngọc", "Nhung", "Nhi", "Oanh", "Phương", "Quỳnh", "Tâm", "Thảo",
               "Thoa", "Thu", "Thủy", "Thương", "Trang", "Trinh", "Tuyết", "Uyên", "Vân", "Vy", "Xuân",
               "Yến")}
# Mobile prefixes whose every number is allocated (Viettel, Vinaphone, MobiFone, Vietnamobile, Gmobile);
# 089 and 099 are allocated only in part, and the importer checks numbers against the numbering plan.
MOBILE = ("032", "033", "034", "035", "036", "037", "038", "039", "086", "096", "097", "098", "081", "082",
          "083", "084", "085", "088", "091", "094", "070", "076", "077", "078", "079", "090", "093",
          "056", "058", "092", "059")


def ascii_fold(text: str) -> str:
    """'Nguyễn Thị Đào' -> 'nguyen thi dao' (usernames and addresses are ASCII)."""
    text = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


class People:
    """Made-up officers: names unique within a unit, usernames, e-mails and phones unique overall."""

    def __init__(self, rng: random.Random, provinces: dict[str, str], taken: Taken | None = None) -> None:
        taken = taken or Taken()
        self.rng = rng
        self.families = list(FAMILY)
        self.weights = list(FAMILY.values())
        self.usernames: set[str] = set(taken.usernames)
        self.emails: set[str] = set(taken.emails)
        self.phones: set[str] = set(taken.phones)
        self.domains = {code: "".join(ascii_fold(name.removeprefix("Thành phố ").removeprefix("Tỉnh ")).split())
                        + ".gov.vn" for code, name in provinces.items()}

    def full_name(self, taken: set[str]) -> str:
        while True:
            sex = "f" if self.rng.random() < 0.48 else "m"
            parts = [self.rng.choices(self.families, self.weights)[0], self.rng.choice(MIDDLE[sex])]
            if self.rng.random() < (0.35 if sex == "f" else 0.15):
                second = self.rng.choice(MIDDLE[sex])
                if second not in parts and second not in ("Thị", "Văn"):
                    parts.append(second)
            given = self.rng.choice(GIVEN[sex])
            if given in parts:
                continue  # 'Trần Hồng Hồng' is nobody's name
            parts.append(given)
            name = unicodedata.normalize("NFC", " ".join(parts))
            if name not in taken:
                taken.add(name)
                return name

    @staticmethod
    def handle(full_name: str) -> str:
        """The usual office login: given name and the initials of the others ('lannt')."""
        words = ascii_fold(full_name).split()
        return words[-1] + "".join(w[0] for w in words[:-1])

    def unique(self, stem: str, taken: set[str], fmt: str) -> str:
        n = 1
        while (value := fmt.format(stem if n == 1 else f"{stem}{n}")) in taken:
            n += 1
        taken.add(value)
        return value

    def username(self, full_name: str, unit: Unit) -> str:
        return self.unique(self.handle(full_name), self.usernames, "{}." + unit.code.lower())

    def email(self, full_name: str, unit: Unit) -> str:
        domain = self.domains.get(unit.province or "", "chinhphu.gov.vn")
        return self.unique(self.handle(full_name), self.emails, "{}@" + domain)

    def phone(self) -> str:
        while True:
            number = self.rng.choice(MOBILE) + f"{self.rng.randrange(10**7):07d}"
            if number not in self.phones:
                self.phones.add(number)
                # Both ways people write their number, as the contract allows.
                return "+84" + number[1:] if self.rng.random() < 0.25 else number


# -- the roster -------------------------------------------------------------------------------------
def scope(units: list[Unit], accounts: int, province: str | None) -> tuple[list[Unit], str | None]:
    """The units a roster of `accounts` covers: the whole tree, or one province's units."""
    if province is None:
        province = "all" if accounts >= NATIONAL else "T01"
    if province == "all":
        return units, None
    inside = [u for u in units if u.province == province]
    if not inside:
        raise RosterError(f"no current province with code {province!r} (e.g. T01, T79)")
    return inside, province


def generate(units: list[Unit], accounts: int, seed: int = 1, province: str | None = None,
             taken: Taken | None = None) -> list[Account]:
    """The roster of `accounts` accounts over `units`, the same for the same tree, seed and `taken`
    (what the database's accounts already hold)."""
    units, province = scope(units, accounts, province)
    rng = random.Random(seed)
    admin_units = [u for u in units if u.kind == "province" or (province is None and u.kind == "nation")]
    tiers = {"commune": [u for u in units if u.level == "commune"],
             "district": [u for u in units if u.level == "commune"],
             "province": [u for u in units if u.level in ("province", "central") and u.kind != "nation"]}
    placed: list[tuple[Unit, str, str]] = []
    for level, counts in role_counts(accounts, len(admin_units)).items():
        admins = counts.pop("unit_admin", 0)
        placed += [(u, level, "unit_admin") for u in admin_units[:admins]]
        readers = counts.pop("external_reader", 0)
        placed += [(u, level, r) for u, r in deal(["external_reader"] * readers,
                                                    [u for u in tiers[level] if u.kind in READER_KINDS], rng)]
        placed += [(u, level, r) for u, r in deal(interleave(counts), tiers[level], rng)]
    order = {lv: i for i, lv in enumerate(capacity.LEVELS)}
    roles = {r: i for i, r in enumerate((*capacity.ROLES, "unit_admin"))}
    placed.sort(key=lambda p: (p[0].code, order[p[1]], roles[p[2]]))
    people = People(rng, {u.code: u.name for u in units if u.kind == "province"}, taken)
    names: dict[str, set[str]] = {code: set(held) for code, held in (taken.names if taken else {}).items()}
    out = []
    for unit, level, role in placed:
        name = people.full_name(names.setdefault(unit.code, set()))
        out.append(Account(
            unit.code, name, people.username(name, unit) if rng.random() < USERNAME_SHARE else "", level, (role,),
            CLEARANCE.get(role, 0), people.email(name, unit) if rng.random() < EMAIL_SHARE else "",
            people.phone() if rng.random() < PHONE_SHARE else ""))
    return out


def key_path(out: Path) -> Path:
    """Where the roster's key goes: national.csv -> national.key.csv."""
    return out.with_name(out.name.rsplit(".", 1)[0] + ".key.csv")


def rows(accounts: list[Account]) -> Iterable[tuple[str | int, ...]]:
    for a in accounts:
        yield (a.unit, a.full_name, a.username, ";".join(a.roles), a.clearance, a.email, a.phone)


def write(accounts: list[Account], out: Path) -> Path:
    """The roster (CSV or XLSX by the name's extension) and its key; returns the key's path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".xlsx":
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet("Danh sách tài khoản")
        sheet.append(HEADER)
        for row in rows(accounts):
            sheet.append(row)
        book.save(out)
    elif out.suffix.lower() == ".csv":
        with out.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(HEADER)
            w.writerows(rows(accounts))
    else:
        raise RosterError(f"{out}: the roster is written as .csv or .xlsx")
    key = key_path(out)
    with key.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(KEY_HEADER)
        w.writerows((a.unit, a.full_name, a.username, a.level, ";".join(a.roles), a.clearance) for a in accounts)
    return key


def summary(accounts: list[Account]) -> str:
    by = Counter((a.level, a.roles[0]) for a in accounts)
    second = sum(1 for a in accounts if a.clearance >= 1 or "unit_admin" in a.roles)
    lines = [f"{len(accounts):,} accounts in {len({a.unit for a in accounts}):,} units; "
             f"{second:,} need a second factor ({second / max(1, len(accounts)):.0%}); "
             f"{sum(1 for a in accounts if not a.username):,} leave the username to the importer"]
    for level in capacity.LEVELS:
        n = sum(v for (lv, _), v in by.items() if lv == level)
        parts = ", ".join(f"{r} {v:,} ({v / n:.0%})" for (lv, r), v in sorted(by.items()) if lv == level)
        lines.append(f"  {level:9} {n:>8,}: {parts}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--accounts", type=int, default=NATIONAL, help=f"accounts in the roster (national: {NATIONAL})")
    p.add_argument("--out", type=Path, required=True, help="roster file, .csv or .xlsx")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--province", help="one province's code (e.g. T01), or 'all' "
                                      f"(default: all for {NATIONAL:,} accounts or more, else T01)")
    p.add_argument("--units-from-db", action="store_true",
                   help="read the units from the database at --dsn instead of the packages `kntc seed-units` reads")
    p.add_argument("--dsn", default=os.environ.get("KNTC_ADMIN_DATABASE_URL"),
                   help="with --units-from-db (default: $KNTC_ADMIN_DATABASE_URL)")
    args = p.parse_args(argv)
    if args.accounts < 1:
        p.error("--accounts must be at least 1")
    if args.units_from_db and not args.dsn:
        p.error("--units-from-db needs --dsn or KNTC_ADMIN_DATABASE_URL")
    started = time.monotonic()
    try:
        units, taken = units_from_db(args.dsn) if args.units_from_db else (units_offline(), Taken())
        accounts = generate(units, args.accounts, args.seed, args.province, taken)
        key = write(accounts, args.out)
    except RosterError as exc:
        print(f"roster: {exc}", file=sys.stderr)
        return 1
    print(summary(accounts))
    print(f"roster {args.out}, key {key}; generated in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
