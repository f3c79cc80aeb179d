"""Every error a user can cause is a 4xx with a message in Vietnamese and English; never a traceback."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from core_app.bad_input import BadInput
from core_app.db_errors import body
from core_app.db_errors import describe as _db_message
from core_app.domain.workflow import TransitionRefused
from core_app.exchange import problems
from core_app.gate import Refused
from core_app.read_retry import mark_unavailable
from core_app.repo.account_admin import AdminRefused
from core_app.repo.account_setup import SetupRefused
from core_app.repo.accounts import LoginFailed
from core_app.repo.cases import Conflict, Invalid, NotFound

log = logging.getLogger("kntc.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, vi: str, en: str, **extra: Any) -> None:
        super().__init__(en)
        self.status, self.code, self.vi, self.en, self.extra = status, code, vi, en, extra


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p not in ("body", "query", "path"))


REFUSALS = {
    "login_required": ("Cần đăng nhập.", "log in first"),
    "session_expired": ("Phiên đăng nhập đã hết hạn; hãy đăng nhập lại.", "your session has expired: log in again"),
    "idle": ("Phiên đăng nhập đã kết thúc do không hoạt động quá lâu; hãy đăng nhập lại.",
             "your session was closed after a long time without activity: log in again"),
}


def refusal(exc: Refused) -> ORJSONResponse:
    """The gate's decision as the API answers it."""
    if exc.reason == "role_not_allowed":
        return ORJSONResponse(body("role_not_allowed", "Tài khoản không có vai trò được phép.",
                                   f"your account needs one of the roles: {', '.join(exc.roles)}"), status_code=403)
    if exc.reason == "setup_required":
        return ORJSONResponse(body("setup_required", "Hãy đổi mật khẩu ban đầu (và đăng ký xác thực hai lớp nếu được "
                                   "yêu cầu) trước khi làm việc khác.", "change your initial password (and enrol a "
                                   "second factor if asked) before anything else", setup="/api/auth/password"),
                              status_code=403)
    vi, en = REFUSALS[exc.reason]
    return ORJSONResponse(body(exc.reason, vi, en), status_code=401)


def bad_input(exc: BadInput) -> ORJSONResponse:
    return ORJSONResponse(body("invalid_input", exc.vi, exc.en, field=exc.where), status_code=422)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> ORJSONResponse:
        return ORJSONResponse(body(exc.code, exc.vi, exc.en, **exc.extra), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/v1/"):
            return problems.response(problems.from_validation_errors(exc.errors()))
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
        code = {"failed": "login_failed", "locked": "account_locked"}.get(exc.kind, exc.kind)
        return ORJSONResponse(body(code, exc.vi, exc.en), status_code=exc.status)

    @app.exception_handler(SetupRefused)
    async def setup_refused(_: Request, exc: SetupRefused) -> ORJSONResponse:
        return ORJSONResponse(body(exc.code, exc.vi, exc.en, field=exc.field), status_code=exc.status)

    @app.exception_handler(AdminRefused)
    async def admin_refused(_: Request, exc: AdminRefused) -> ORJSONResponse:
        return ORJSONResponse(body(exc.code, exc.vi, exc.en, field=exc.field), status_code=exc.status)

    @app.exception_handler(psycopg.Error)
    async def database(request: Request, exc: psycopg.Error) -> ORJSONResponse:
        status, payload = _db_message(exc)
        if status >= 500:
            log.exception("database error")
            mark_unavailable(request)
        return ORJSONResponse(payload, status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> ORJSONResponse:
        log.exception("unexpected error")
        return ORJSONResponse(body("internal", "Lỗi hệ thống; đã ghi nhật ký.", "internal error; it has been logged"),
                              status_code=500)
