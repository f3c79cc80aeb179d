"""Every error a user can cause is a 4xx with a message in Vietnamese and English; never a traceback."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core_app.domain.workflow import TransitionRefused
from core_app.repo.accounts import LoginFailed
from core_app.repo.cases import Conflict, Invalid, NotFound

log = logging.getLogger("kntc.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, vi: str, en: str, **extra: Any) -> None:
        super().__init__(en)
        self.status, self.code, self.vi, self.en, self.extra = status, code, vi, en, extra


def body(code: str, vi: str, en: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": vi, "message_en": en, **extra}


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p not in ("body", "query", "path"))


# Constraint names PostgreSQL reports, turned into what the user did wrong.
def _db_message(exc: psycopg.Error) -> tuple[int, dict[str, Any]]:
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
    if isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected |
                  psycopg.errors.LockNotAvailable):
        return 409, body("retry", "Hồ sơ đang được người khác cập nhật, vui lòng thử lại.",
                         "the record is being changed by someone else: try again")
    return 503, body("database_unavailable", "Cơ sở dữ liệu tạm thời không phản hồi, vui lòng thử lại.",
                     "the database is temporarily unavailable: try again")


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> ORJSONResponse:
        return ORJSONResponse(body(exc.code, exc.vi, exc.en, **exc.extra), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> ORJSONResponse:
        fields = [{"field": _field_path(tuple(e.get("loc", ()))), "message": e.get("msg", "")} for e in exc.errors()]
        summary = "; ".join(f"{f['field'] or 'body'}: {f['message']}" for f in fields[:5])
        return ORJSONResponse(body("invalid_input", "Dữ liệu nhập không hợp lệ: " + summary,
                                   "invalid input: " + summary, fields=fields), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        if exc.status_code == 404:
            return ORJSONResponse(body("not_found", "Không tìm thấy.", "not found"), status_code=404)
        if exc.status_code == 405:
            return ORJSONResponse(body("method_not_allowed", "Phương thức không được hỗ trợ.", "method not allowed"),
                                  status_code=405)
        return ORJSONResponse(body("http_error", str(exc.detail), str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(TransitionRefused)
    async def refused(_: Request, exc: TransitionRefused) -> ORJSONResponse:
        status = 403 if exc.code in ("role_not_allowed", "wrong_unit") else 409
        if exc.code in ("unknown_action", "missing_field"):
            status = 400
        return ORJSONResponse(body(exc.code, exc.vi, exc.en), status_code=status)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> ORJSONResponse:
        return ORJSONResponse(body("not_found", "Không tìm thấy hồ sơ (hoặc hồ sơ ngoài phạm vi được xem).",
                                   "not found (or outside what your account may see)"), status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> ORJSONResponse:
        return ORJSONResponse(body("version_conflict", "Hồ sơ đã được người khác cập nhật; hãy tải lại trước khi sửa.",
                                   "the case file was changed by someone else: reload it before changing it",
                                   current_version=exc.current_version), status_code=409)

    @app.exception_handler(Invalid)
    async def invalid(_: Request, exc: Invalid) -> ORJSONResponse:
        return ORJSONResponse(body("invalid_input", exc.vi, exc.en, field=exc.field), status_code=400)

    @app.exception_handler(LoginFailed)
    async def login_failed(_: Request, exc: LoginFailed) -> ORJSONResponse:
        if exc.locked:
            return ORJSONResponse(body("account_locked", "Tài khoản đang bị khóa; hãy liên hệ quản trị đơn vị.",
                                       "the account is locked: ask your unit administrator"),
                                  status_code=423)
        return ORJSONResponse(body("login_failed", "Tên đăng nhập hoặc mật khẩu không đúng.",
                                   "wrong username or password"), status_code=401)

    @app.exception_handler(psycopg.Error)
    async def database(_: Request, exc: psycopg.Error) -> ORJSONResponse:
        status, payload = _db_message(exc)
        if status >= 500:
            log.exception("database error")
        return ORJSONResponse(payload, status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> ORJSONResponse:
        log.exception("unexpected error")
        return ORJSONResponse(body("internal", "Lỗi hệ thống; đã ghi nhật ký.", "internal error; it has been logged"),
                              status_code=500)
