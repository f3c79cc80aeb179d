"""What every web route needs: the officer acting (or a redirect to login), forms with CSRF, errors as pages."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import FormData

from core_app import gate
from core_app.web import guard


class WebError(Exception):
    """Rendered as an HTML page with the status and a message in both languages."""

    def __init__(self, status: int, vi: str, en: str) -> None:
        super().__init__(en)
        self.status, self.vi, self.en = status, vi, en


NOT_FOUND = WebError(404, "Không tìm thấy hồ sơ, hoặc hồ sơ nằm ngoài phạm vi tài khoản được xem.",
                     "Not found, or outside what your account may see.")


def forbidden(vi: str = "Tài khoản không có quyền vào trang này.",
              en: str = "Your account may not open this page.") -> WebError:
    return WebError(403, vi, en)


# The gate decides who is acting, for the pages as for the API; a refusal becomes a redirect to
# login or a 403 page (see core_app.app).
acting = gate.acting


async def form_of(request: Request) -> FormData:
    """The posted form, after its CSRF token is checked."""
    form = await request.form(max_files=1, max_fields=200)
    if not guard.csrf_ok(request, str(form.get("csrf") or "")):
        raise WebError(403, "Biểu mẫu đã hết hạn hoặc không hợp lệ; hãy tải lại trang và gửi lại.",
                       "The form has expired or is not valid: reload the page and send it again.")
    return form


def text(form: FormData, name: str) -> str | None:
    v = form.get(name)
    if v is None or not isinstance(v, str):
        return None
    v = v.strip()
    return v or None


def login_url(next_url: str, reason: str = "") -> str:
    return "/login?next=" + quote(next_url, safe="") + (f"&reason={reason}" if reason else "")



def said(vi: str, en: str) -> tuple[str, str]:
    """A refusal's two messages as sentences for a page: the repositories word theirs for the API,
    where English is a lower-case phrase and a password rule may start in lower case."""
    def sentence(s: str) -> str:
        s = s.strip()
        if s and s[0].islower():
            s = s[0].upper() + s[1:]
        return s + ("" if not s or s[-1] in ".!?:" else ".")
    return sentence(vi), sentence(en)

ERROR_TYPES = {
    "missing": ("Bắt buộc nhập.", "Required."),
    "string_too_short": ("Chưa nhập hoặc quá ngắn.", "Missing or too short."),
    "string_too_long": ("Quá dài.", "Too long."),
    "string_pattern_mismatch": ("Sai định dạng.", "Wrong format."),
    "literal_error": ("Hãy chọn một giá trị trong danh sách.", "Choose one of the values offered."),
    "int_parsing": ("Phải là số nguyên.", "Must be a whole number."),
    "greater_than_equal": ("Giá trị quá nhỏ.", "Too small."),
    "less_than_equal": ("Giá trị quá lớn.", "Too large."),
    "date_from_datetime_parsing": ("Ngày không hợp lệ (dd/mm/yyyy).", "Not a valid date."),
    "date_parsing": ("Ngày không hợp lệ.", "Not a valid date."),
    "value_error": ("Giá trị không hợp lệ.", "Not a valid value."),
}
FIELD_HINTS = {
    "id_number": ("Số định danh cá nhân gồm đúng 12 chữ số.", "The personal ID number has exactly 12 digits."),
    "visitor_id_number": ("Số định danh cá nhân gồm đúng 12 chữ số.", "The personal ID number has exactly 12 digits."),
    "phone": ("Số điện thoại gồm 6–20 chữ số.", "A phone number of 6–20 digits."),
    "email": ("Địa chỉ thư điện tử không hợp lệ.", "Not a valid e-mail address."),
    "notify_channels": ("Khi công dân đồng ý nhận thông báo, chọn ít nhất một kênh; SMS cần số điện thoại di động, "
                        "thư điện tử cần địa chỉ thư; không chọn kênh nào khi công dân không đồng ý.",
                        "When the citizen agrees to be notified, choose a channel; SMS needs a mobile number, e-mail "
                        "an address; choose none without the citizen's consent."),
    "username": ("Tên đăng nhập: chữ thường không dấu, số, dấu chấm, gạch; 3–64 ký tự.",
                 "Username: lower-case letters, digits, dot, dash; 3–64 characters."),
}


def field_errors(exc: ValidationError, rename: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """Pydantic's errors as {form field: (vi, en)}, so each shows next to its field."""
    out: dict[str, tuple[str, str]] = {}
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ()) if not isinstance(p, int)]
        name = loc[-1] if loc else "_form"
        name = (rename or {}).get(".".join(loc), (rename or {}).get(name, name))
        if e["type"] == "value_error" and not loc:
            msg = str(e.get("msg", "")).removeprefix("Value error, ")
            out.setdefault("_form", (msg, msg))
            continue
        base = name.removeprefix("party_")
        out.setdefault(name, FIELD_HINTS.get(base) or ERROR_TYPES.get(e["type"], ERROR_TYPES["value_error"]))
    return out
