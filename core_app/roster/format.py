"""The roster file: its columns (Vietnamese or English headers), and reading CSV or XLSX into rows."""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path

MAX_ROWS = 250_000
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Column:
    key: str
    vi: str
    en: str
    required: bool
    what_vi: str
    what_en: str


COLUMNS = (
    Column("unit_code", "ma_don_vi", "unit_code", True, "mã đơn vị hiện hành (ví dụ X00004, T01)",
           "a current unit's code (e.g. X00004, T01)"),
    Column("full_name", "ho_ten", "full_name", True, "họ và tên", "full name"),
    Column("username", "ten_dang_nhap", "username", False,
           "để trống để hệ thống tạo (tên + chữ đầu họ đệm + mã đơn vị, ví dụ annv.x00004)",
           "empty to have one generated (given name + initials + unit code, e.g. annv.x00004)"),
    Column("roles", "vai_tro", "roles", True,
           "một hoặc nhiều vai trò, cách nhau bằng dấu ;  (tiep_dan, xu_ly, giai_quyet, thu_truong, quan_tri_don_vi, "
           "doc_ngoai, quan_tri_he_thong, hoặc tên tiếng Anh)",
           "one or more roles separated by ;  (reception, handling, resolution, head, unit_admin, external_reader, "
           "sysadmin, or the Vietnamese names)"),
    Column("clearance", "muc_mat", "clearance", False, "0 thường, 1 mật, 2 tối mật (mặc định 0)",
           "0 normal, 1 confidential, 2 secret (default 0)"),
    Column("email", "email", "email", False, "thư điện tử công vụ", "official e-mail"),
    Column("phone", "dien_thoai", "phone", False, "số điện thoại (0912345678 hoặc +84912345678)",
           "phone number (0912345678 or +84912345678)"),
)


def fold(text: str) -> str:
    """Lowercase ASCII without diacritics: 'Mã đơn vị' -> 'ma don vi'."""
    text = text.replace("đ", "d").replace("Đ", "D")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().strip()


def _header_key(name: str) -> str | None:
    n = fold(name).replace(" ", "_").replace("-", "_")
    for c in COLUMNS:
        if n in (c.vi, c.en, c.key):
            return c.key
    return None


class RosterUnreadable(Exception):
    """The file as a whole cannot be read: one reason, in both languages."""

    def __init__(self, vi: str, en: str) -> None:
        super().__init__(en)
        self.vi, self.en = vi, en


@dataclass(frozen=True)
class RawRow:
    line: int  # as the importer sees it: the header is line 1
    values: dict[str, str]


def _rows(table: list[list[str]]) -> list[RawRow]:
    if not table:
        raise RosterUnreadable("Tệp trống.", "the file is empty")
    header = [_header_key(h or "") for h in table[0]]
    unknown = [str(h) for h, k in zip(table[0], header, strict=True) if k is None and str(h or "").strip()]
    if unknown:
        raise RosterUnreadable(f"Cột không biết: {', '.join(unknown)}.", f"unknown column(s): {', '.join(unknown)}")
    missing = [c for c in COLUMNS if c.required and c.key not in header]
    if missing:
        raise RosterUnreadable("Thiếu cột: " + ", ".join(f"{c.vi} ({c.en})" for c in missing) + ".",
                               "missing column(s): " + ", ".join(c.en for c in missing))
    if len(table) - 1 > MAX_ROWS:
        raise RosterUnreadable(f"Tệp có hơn {MAX_ROWS} dòng; hãy chia nhỏ.", f"more than {MAX_ROWS} rows: split it")
    out = []
    for i, cells in enumerate(table[1:], start=2):
        values = {k: str(v if v is not None else "").strip() for k, v in zip(header, cells, strict=False) if k}
        if any(values.values()):
            out.append(RawRow(i, values))
    return out


def read(data: bytes, filename: str) -> list[RawRow]:
    """Rows of a CSV (UTF-8, with or without BOM; comma or semicolon) or an XLSX (first sheet)."""
    if len(data) > MAX_BYTES:
        raise RosterUnreadable("Tệp lớn hơn 64 MB.", "the file is larger than 64 MB")
    suffix = Path(filename).suffix.lower()
    if suffix == ".xlsx" or data[:4] == b"PK\x03\x04":
        return _rows(_xlsx(data))
    if suffix not in (".csv", ".txt", ""):
        raise RosterUnreadable("Chỉ nhận tệp .csv hoặc .xlsx.", "only .csv or .xlsx files are accepted")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RosterUnreadable("Tệp CSV phải mã hóa UTF-8 (trong Excel: Lưu thành > CSV UTF-8).",
                               "the CSV must be UTF-8 (in Excel: Save as > CSV UTF-8)") from None
    if "\x00" in text:
        raise RosterUnreadable("Tệp chứa ký tự NUL: không phải tệp CSV.", "the file holds NUL characters: not a CSV")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    return _rows([list(r) for r in csv.reader(io.StringIO(text), delimiter=delimiter)])


def _xlsx(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a damaged or foreign file
        raise RosterUnreadable("Không đọc được tệp XLSX.", "the XLSX file cannot be read") from None
    try:
        sheet = book.worksheets[0]
        return [["" if v is None else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
                 for v in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()
