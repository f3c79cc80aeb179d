"""What a database error means to the user: a status and a message in Vietnamese and English.

Shared by the API (JSON) and the web pages (an error page); a 503 only ever means an outage.
"""

from __future__ import annotations

from typing import Any

import psycopg


def body(code: str, vi: str, en: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": vi, "message_en": en, **extra}


# Constraint names PostgreSQL reports, turned into what the user did wrong.
def describe(exc: psycopg.Error) -> tuple[int, dict[str, Any]]:
    diag = exc.diag
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return 409, body("duplicate", "Dữ liệu đã tồn tại.", f"already exists ({diag.constraint_name})")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return 403, body("forbidden", "Tài khoản không có quyền thực hiện thao tác này.",
                         "your account is not allowed to do this")
    if isinstance(exc, psycopg.errors.ForeignKeyViolation):
        return 400, body("unknown_reference", "Tham chiếu không tồn tại.",
                         f"unknown reference ({diag.constraint_name})")
    if isinstance(exc, psycopg.errors.CheckViolation | psycopg.errors.NotNullViolation |
                  psycopg.errors.StringDataRightTruncation | psycopg.errors.InvalidTextRepresentation |
                  psycopg.errors.DatetimeFieldOverflow | psycopg.errors.NumericValueOutOfRange):
        return 400, body("invalid_value", "Giá trị không hợp lệ.",
                         f"invalid value ({diag.constraint_name or diag.message_primary})")
    if isinstance(exc, psycopg.DataError):
        # Text PostgreSQL cannot store (a NUL, a byte sequence invalid in UTF-8), a number out of
        # range: the input is wrong, the database is fine. A 503 must only ever mean an outage.
        return 400, body("invalid_value", "Dữ liệu nhập chứa giá trị hoặc ký tự không hợp lệ.",
                         "the input holds a value or a character that is not valid")
    if isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected |
                  psycopg.errors.LockNotAvailable):
        return 409, body("retry", "Hồ sơ đang được người khác cập nhật, vui lòng thử lại.",
                         "the record is being changed by someone else: try again")
    return 503, body("database_unavailable", "Cơ sở dữ liệu tạm thời không phản hồi, vui lòng thử lại.",
                     "the database is temporarily unavailable: try again")
