"""Templates, languages and labels: Vietnamese first, English on request (cookie kntc_lang).

Templates write each text once in both languages, side by side: `t("Tiếp công dân", "Citizen
reception")`, so a translation can never go missing or drift away from its original.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from core_app.domain.workflow import ACTIONS, RESOLUTION_NAMES, STATUS_LABELS, Status
from core_app.web import guard

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

KINDS = {
    "complaint": ("Khiếu nại", "Complaint"),
    "denunciation": ("Tố cáo", "Denunciation"),
    "recommendation": ("Kiến nghị, phản ánh", "Recommendation, feedback"),
    "multi": ("Nhiều nội dung", "Several contents"),
}
CHANNELS = {
    "in_person": ("Trực tiếp", "In person"),
    "letter": ("Thư", "Letter"),
    "email": ("Thư điện tử", "E-mail"),
    "fax": ("Fax", "Fax"),
    "phone": ("Điện thoại", "Phone"),
    "online": ("Trực tuyến", "Online"),
    "transferred": ("Cơ quan khác chuyển đến", "Transferred by another body"),
}
ROLES = {
    "reception": ("Tiếp công dân", "Reception"),
    "handling": ("Xử lý đơn", "Petition handling"),
    "resolution": ("Giải quyết", "Resolution"),
    "head": ("Thủ trưởng đơn vị", "Head of unit"),
    "unit_admin": ("Quản trị đơn vị", "Unit administrator"),
    "external_reader": ("Cơ quan khác (chỉ xem)", "Other body (read only)"),
    "sysadmin": ("Quản trị hệ thống", "System administrator"),
}
PARTY_ROLES = {
    "complainant": ("Người khiếu nại", "Complainant"),
    "denouncer": ("Người tố cáo", "Denouncer"),
    "petitioner": ("Người kiến nghị, phản ánh", "Petitioner"),
    "representative": ("Người đại diện", "Representative"),
}
STEPS = {
    "accept": ("Thụ lý / xử lý đơn", "Acceptance / petition handling"),
    "transfer": ("Chuyển đơn", "Transfer"),
    "notify_acceptance": ("Thông báo thụ lý", "Notify acceptance"),
    "resolve": ("Giải quyết", "Resolution"),
    "correct_data": ("Sửa dữ liệu", "Data correction"),
}
NOTIFY_EVENTS = {"received": ("Tiếp nhận", "Received"), "accepted": ("Thụ lý", "Accepted"),
                 "transferred": ("Chuyển đơn vị", "Transferred"), "extended": ("Gia hạn", "Extended"),
                 "resolved": ("Giải quyết", "Resolved")}
NOTIFY_STATUSES = {"queued": ("Chờ gửi", "Queued"), "sent": ("Đã gửi", "Sent"),
                   "delivered": ("Đã đến máy", "Delivered"), "failed": ("Không gửi được", "Failed"),
                   "cancelled": ("Đã hủy", "Cancelled")}
CLASSIFICATIONS = {0: ("Thường", "Normal"), 1: ("Mật", "Confidential"), 2: ("Tối mật", "Secret")}
EVENT_ACTIONS = {"receive": ("Tiếp nhận", "Received"), "edit": ("Sửa hồ sơ", "Edited"),
                 "add_petition": ("Thêm đơn", "Petition added"), "assign": ("Phân công", "Assigned"),
                 "attach": ("Đính kèm tài liệu", "Document attached"),
                 "overdue_cause": ("Ghi nguyên nhân quá hạn", "Cause of delay recorded"),
                 "correct": ("Sửa dữ liệu", "Data corrected"), "import": ("Nhập từ hệ thống cũ", "Imported")}
EVENT_ACTIONS.update({a.name: (a.label_vi, a.label_en) for a in ACTIONS.values()})

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "svg"]),
                   trim_blocks=True, lstrip_blocks=True)
_env.globals.update(str=str, dict=dict)


def lang_of(request: Request) -> str:
    lang = request.cookies.get(guard.LANG_COOKIE) or request.app.state.settings.default_language
    return "en" if lang == "en" else "vi"


def translator(lang: str):
    def t(vi: str, en: str) -> str:
        return en if lang == "en" else vi
    return t


def label(table: dict[Any, tuple[str, str]], lang: str):
    def get(key: Any) -> str:
        pair = table.get(key)
        if pair is None and isinstance(key, str) and key.isdigit():
            pair = table.get(int(key))
        if pair is None:
            return "" if key is None else str(key)
        return pair[1] if lang == "en" else pair[0]
    return get


def fmt_date(d: date | datetime | None) -> str:
    if d is None:
        return ""
    if isinstance(d, datetime):
        return d.astimezone(VN_TZ).strftime("%d/%m/%Y %H:%M")
    return d.strftime("%d/%m/%Y")


def context(request: Request) -> dict[str, Any]:
    lang = lang_of(request)
    status_labels = {str(k): v for k, v in STATUS_LABELS.items()}
    return {
        "request": request, "lang": lang, "t": translator(lang),
        "actor": getattr(request.state, "actor", None),
        # A setup session has no actor: its pages name the officer and offer to log out.
        "setup_user": None,
        "csrf": guard.csrf_token(request),
        "status_label": label(status_labels, lang), "kind_label": label(KINDS, lang),
        "channel_label": label(CHANNELS, lang), "role_label": label(ROLES, lang),
        "roles_text": lambda roles: ", ".join(label(ROLES, lang)(r) for r in roles),
        "party_role_label": label(PARTY_ROLES, lang), "step_label": label(STEPS, lang),
        "class_label": label(CLASSIFICATIONS, lang), "event_label": label(EVENT_ACTIONS, lang),
        "resolution_label": label(RESOLUTION_NAMES, lang),
        "notify_event_label": label(NOTIFY_EVENTS, lang), "notify_status_label": label(NOTIFY_STATUSES, lang),
        "KINDS": KINDS, "CHANNELS": CHANNELS, "ROLES": ROLES, "PARTY_ROLES": PARTY_ROLES,
        "STATUSES": [str(s) for s in Status], "fmt_date": fmt_date,
        "today": request.app.state.clock(), "now_ts": datetime.now(UTC),
    }


def page(request: Request, template: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    html = _env.get_template(template).render({**context(request), **ctx})
    resp = HTMLResponse(html, status_code=status_code)
    # Officer pages hold personal data: never kept in a shared PC's cache.
    resp.headers["Cache-Control"] = "no-store"
    return resp
