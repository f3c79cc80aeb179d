"""The handling workflow of a case file: states, actions, who may take them.

reception → handling decision (accept / forward / guide / file away / return) → acceptance →
verification → resolution → closed. A forward keeps the same case file and hands it to the
competent unit, where it starts again at `received`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    RECEIVED = "received"
    IN_HANDLING = "in_handling"
    ACCEPTED = "accepted"
    VERIFYING = "verifying"
    RESOLVED = "resolved"
    CLOSED = "closed"
    GUIDED = "guided"
    FILED = "filed"
    RETURNED = "returned"


TERMINAL = frozenset({Status.CLOSED, Status.GUIDED, Status.FILED, Status.RETURNED})

STATUS_LABELS = {
    Status.RECEIVED: ("Đã tiếp nhận", "Received"),
    Status.IN_HANDLING: ("Đang xử lý đơn", "Petition handling"),
    Status.ACCEPTED: ("Đã thụ lý", "Accepted for resolution"),
    Status.VERIFYING: ("Đang xác minh", "Under verification"),
    Status.RESOLVED: ("Đã giải quyết", "Resolved"),
    Status.CLOSED: ("Đã kết thúc", "Closed"),
    Status.GUIDED: ("Đã hướng dẫn", "Citizen guided to the competent body"),
    Status.FILED: ("Lưu đơn", "Kept on file"),
    Status.RETURNED: ("Đã trả lại đơn", "Returned"),
}


@dataclass(frozen=True)
class Action:
    name: str
    sources: frozenset[Status]
    target: Status | None  # None: the status does not change (e.g. an extension)
    roles: frozenset[str]
    label_vi: str
    label_en: str
    requires: tuple[str, ...] = ()  # fields the request must carry


def _a(name: str, sources: set[Status], target: Status | None, roles: set[str], vi: str, en: str,
       requires: tuple[str, ...] = ()) -> Action:
    return Action(name, frozenset(sources), target, frozenset(roles), vi, en, requires)


ACTIONS: dict[str, Action] = {a.name: a for a in (
    _a("submit", {Status.RECEIVED}, Status.IN_HANDLING, {"reception", "handling", "head"},
       "Chuyển xử lý đơn", "Hand to petition handling"),
    _a("accept", {Status.IN_HANDLING}, Status.ACCEPTED, {"handling", "head"},
       "Thụ lý giải quyết", "Accept for resolution"),
    _a("forward", {Status.IN_HANDLING}, Status.RECEIVED, {"handling", "head"},
       "Chuyển đơn đến cơ quan có thẩm quyền", "Forward to the competent body", ("target_unit",)),
    _a("guide", {Status.IN_HANDLING}, Status.GUIDED, {"handling", "head"},
       "Hướng dẫn công dân", "Guide the citizen to the competent body", ("note",)),
    _a("file_away", {Status.IN_HANDLING}, Status.FILED, {"handling", "head"},
       "Lưu đơn", "Keep on file", ("note",)),
    _a("return", {Status.IN_HANDLING}, Status.RETURNED, {"handling", "head"},
       "Trả lại đơn", "Return the petition", ("note",)),
    _a("start_verification", {Status.ACCEPTED}, Status.VERIFYING, {"resolution", "head"},
       "Bắt đầu xác minh", "Start verification"),
    _a("record_verification", {Status.VERIFYING}, None, {"resolution", "head"},
       "Ghi nhận bước xác minh", "Record a verification step", ("note",)),
    # The head decides an extension (the approver), with its reason: the acceptance check of a
    # denunciation (art. 24(1)) while it is handled, its resolution (art. 30) once accepted.
    _a("extend", {Status.RECEIVED, Status.IN_HANDLING, Status.ACCEPTED, Status.VERIFYING}, None, {"head"},
       "Gia hạn thời hạn", "Extend a time limit", ("note",)),
    _a("notify_acceptance", {Status.ACCEPTED, Status.VERIFYING}, None, {"handling", "resolution", "head"},
       "Đã thông báo thụ lý cho người tố cáo, người bị tố cáo",
       "Notice of acceptance sent to the denouncer and the denounced"),
    _a("resolve", {Status.ACCEPTED, Status.VERIFYING}, Status.RESOLVED, {"resolution", "head"},
       "Ban hành quyết định/kết luận/trả lời", "Issue the decision, conclusion or answer", ("summary",)),
    _a("close", {Status.RESOLVED}, Status.CLOSED, {"head"},
       "Kết thúc hồ sơ", "Close the case file"),
    # A complainant who disagrees with the first decision: the same case file, round 2, to the
    # competent unit (Complaints Law 2011, arts. 33, 36).
    _a("second_round", {Status.RESOLVED, Status.CLOSED}, Status.RECEIVED, {"reception", "handling", "head"},
       "Tiếp nhận khiếu nại lần hai", "Receive a second-round complaint", ("target_unit",)),
)}

RESOLUTION_NAMES = {
    "complaint": ("Quyết định giải quyết khiếu nại", "Decision on the complaint"),
    "denunciation": ("Kết luận nội dung tố cáo", "Conclusion on the denunciation"),
    "recommendation": ("Văn bản trả lời kiến nghị, phản ánh", "Answer to the recommendation"),
    "multi": ("Văn bản giải quyết", "Resolution document"),
}


class TransitionRefused(Exception):
    """An action the rules do not allow; the message says why, in Vietnamese and English."""

    def __init__(self, code: str, vi: str, en: str) -> None:
        super().__init__(en)
        self.code, self.vi, self.en = code, vi, en


@dataclass(frozen=True)
class Actor:
    account_id: int
    unit_id: int
    roles: frozenset[str]
    clearance: int


def check(action_name: str, status: str, actor: Actor, case_unit_id: int, given: dict[str, object]) -> Action:
    """Return the action if `actor` may take it on a case in `status` held by `case_unit_id`."""
    action = ACTIONS.get(action_name)
    if action is None:
        raise TransitionRefused("unknown_action", f"Thao tác không tồn tại: {action_name}",
                                f"unknown action {action_name!r}; expected one of {', '.join(ACTIONS)}")
    current = Status(status)
    if current in TERMINAL and current not in action.sources:
        vi, en = STATUS_LABELS[current]
        raise TransitionRefused("case_finished", f"Hồ sơ đã ở trạng thái cuối ({vi}); không thể '{action.label_vi}'.",
                                f"the case file is finished ({en}); '{action.label_en}' is not possible")
    if current not in action.sources:
        vi, en = STATUS_LABELS[current]
        allowed_vi = ", ".join(STATUS_LABELS[s][0] for s in sorted(action.sources))
        allowed_en = ", ".join(STATUS_LABELS[s][1] for s in sorted(action.sources))
        raise TransitionRefused(
            "illegal_transition",
            f"Không thể '{action.label_vi}' khi hồ sơ đang ở trạng thái '{vi}' (chỉ được khi: {allowed_vi}).",
            f"'{action.label_en}' is not possible while the case is '{en}' (only when: {allowed_en})")
    if "external_reader" in actor.roles or not (actor.roles & action.roles):
        need = ", ".join(sorted(action.roles))
        raise TransitionRefused(
            "role_not_allowed",
            f"Tài khoản không có vai trò được phép '{action.label_vi}' (cần: {need}).",
            f"your account has no role allowed to '{action.label_en}' (needs one of: {need})")
    if actor.unit_id != case_unit_id:
        raise TransitionRefused(
            "wrong_unit", "Chỉ đơn vị đang giải quyết hồ sơ mới được thao tác.",
            "only officers of the unit that holds the case file may act on it")
    missing = [f for f in action.requires if not given.get(f)]
    if missing:
        raise TransitionRefused("missing_field", f"Thiếu thông tin bắt buộc: {', '.join(missing)}.",
                                f"missing required field(s): {', '.join(missing)}")
    return action
