"""Each roster row on its own: a role the system knows, a clearance, a well-formed contact, a name."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core_app.roster.format import RawRow, fold

ROLES = ("reception", "handling", "resolution", "head", "unit_admin", "external_reader", "sysadmin")
# Vietnamese names of the roles, as officers write them (folded: no diacritics, lowercase).
ROLE_ALIASES = {
    "tiep_dan": "reception", "tiep_cong_dan": "reception",
    "xu_ly": "handling", "xu_ly_don": "handling",
    "giai_quyet": "resolution",
    "thu_truong": "head", "thu_truong_don_vi": "head", "lanh_dao": "head",
    "quan_tri_don_vi": "unit_admin", "quan_tri": "unit_admin",
    "doc_ngoai": "external_reader", "co_quan_khac": "external_reader", "chi_xem": "external_reader",
    "quan_tri_he_thong": "sysadmin",
}
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
UNIT_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")


@dataclass(frozen=True)
class Row:
    line: int
    unit_code: str
    full_name: str
    username: str | None
    roles: tuple[str, ...]
    clearance: int
    email: str | None
    phone: str | None


@dataclass(frozen=True)
class RowError:
    line: int
    vi: str
    en: str

    def __str__(self) -> str:
        return f"{self.vi} / {self.en}"


def _roles(cell: str) -> tuple[list[str], list[str]]:
    known, unknown = [], []
    for part in re.split(r"[;,|]", cell):
        if not part.strip():
            continue
        key = fold(part).replace(" ", "_").replace("-", "_")
        role = key if key in ROLES else ROLE_ALIASES.get(key)
        (known if role else unknown).append(role or part.strip())
    return sorted(set(known), key=ROLES.index), unknown


def normal_email(cell: str) -> str | None:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(cell, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def normal_phone(cell: str) -> str | None:
    import phonenumbers

    try:
        number = phonenumbers.parse(cell, "VN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check(raw: RawRow) -> Row | list[RowError]:
    v, line = raw.values, raw.line
    errors: list[RowError] = []

    def bad(vi: str, en: str) -> None:
        errors.append(RowError(line, vi, en))

    unit = v.get("unit_code", "").upper()
    if not unit:
        bad("thiếu mã đơn vị", "the unit code is missing")
    elif not UNIT_CODE.match(unit):
        bad(f"mã đơn vị {unit!r} sai dạng", f"unit code {unit!r} is malformed")
    name = " ".join(v.get("full_name", "").split())
    if not 2 <= len(name) <= 200:
        bad("họ tên cần 2 đến 200 ký tự", "the full name needs 2 to 200 characters")
    username = v.get("username", "").lower() or None
    if username and not USERNAME.match(username):
        bad(f"tên đăng nhập {username!r} sai dạng (chữ thường không dấu, số, . _ -; 3 đến 64 ký tự)",
            f"username {username!r} is malformed (lowercase letters, digits, . _ -; 3 to 64 characters)")
    roles, unknown = _roles(v.get("roles", ""))
    if unknown:
        bad(f"vai trò không có: {', '.join(unknown)}", f"unknown role(s): {', '.join(unknown)}")
    elif not roles:
        bad("thiếu vai trò", "no role given")
    elif "external_reader" in roles and len(roles) > 1:
        bad("vai trò đọc ngoài không đi kèm vai trò khác", "external_reader cannot be combined with other roles")
    clearance_cell = v.get("clearance", "") or "0"
    clearance = int(clearance_cell) if clearance_cell in ("0", "1", "2") else -1
    if clearance < 0:
        bad(f"mức mật {clearance_cell!r} phải là 0, 1 hoặc 2", f"clearance {clearance_cell!r} must be 0, 1 or 2")
    email = None
    if v.get("email"):
        email = normal_email(v["email"])
        if email is None:
            bad(f"thư điện tử {v['email']!r} sai dạng", f"e-mail {v['email']!r} is malformed")
    phone = None
    if v.get("phone"):
        phone = normal_phone(v["phone"])
        if phone is None:
            bad(f"số điện thoại {v['phone']!r} không hợp lệ", f"phone number {v['phone']!r} is not valid")
    if errors:
        return errors
    return Row(line, unit, name, username, tuple(roles), clearance, email, phone)


def generated_username(full_name: str, unit_code: str, n: int = 1) -> str:
    """Given name and the initials of the others, then the unit: 'Nguyễn Văn An', X00004 -> 'annv.x00004'
    (the way Vietnamese offices name mailboxes); the n-th namesake gets 'annv2.x00004'."""
    words = [w for w in re.split(r"[^a-z0-9]+", fold(full_name)) if w] or ["canbo"]
    stem = words[-1] + "".join(w[0] for w in words[:-1]) + (str(n) if n > 1 else "")
    suffix = "." + fold(unit_code).replace(" ", "")
    return stem[: 64 - len(suffix)] + suffix
