"""What citizens are told: the texts of notifications and of the SMS lookup's replies.

Each text is written once in Vietnamese with its diacritics (the e-mail), and sent by SMS without
them, in the GSM 03.38 alphabet: a brandname SMS in that alphabet holds 160 characters, one in
UCS-2 (what diacritics need) only 70, and Vietnamese carriers price and filter brandname traffic
per 160-character segment, so providers ask for text without diacritics as the common practice.
Every SMS here fits one message: the unit's name is shortened, then the lookup hint dropped, until
it does (`fit_sms`).

A message carries only the facts the outbox holds (case code, event, the handling unit's name, a
date): never the subject, the content, the respondent, a party, nor a result. The same goes for the
lookup's reply, which also leaves out the kind of petition (a phone's screen saying "tố cáo" could
tell a bystander who denounced someone) and the published result.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
import phonenumbers

from core_app.domain.workflow import STATUS_LABELS, Status

SMS_LIMIT = 160  # septets of one GSM 03.38 message
CODEC = "gsm03.38"

# What each event says, after "Hồ sơ {code}". Placeholders: unit, on, due_on.
EVENTS: dict[str, tuple[str, str]] = {
    "received": ("đã được tiếp nhận ngày {on}. Đơn vị giải quyết: {unit}.",
                 "was received on {on}. Handling body: {unit}."),
    "accepted": ("đã được thụ lý giải quyết ngày {on}. Đơn vị giải quyết: {unit}.",
                 "was accepted for resolution on {on}. Handling body: {unit}."),
    "transferred": ("đã được chuyển đến {unit} ngày {on}.",
                    "was transferred to {unit} on {on}."),
    "extended_resolve": ("được gia hạn thời hạn giải quyết đến ngày {due_on}. Đơn vị giải quyết: {unit}.",
                         "has its time limit for resolution extended to {due_on}. Handling body: {unit}."),
    "extended_accept": ("được gia hạn thời hạn thụ lý đến ngày {due_on}. Đơn vị giải quyết: {unit}.",
                        "has its time limit for acceptance extended to {due_on}. Handling body: {unit}."),
    "resolved": ("đã có kết quả giải quyết ngày {on}. Đơn vị giải quyết: {unit}.",
                 "was resolved on {on}. Handling body: {unit}."),
}
SUBJECTS = {
    "received": "đã được tiếp nhận", "accepted": "đã được thụ lý", "transferred": "đã được chuyển đơn vị giải quyết",
    "extended": "được gia hạn thời hạn", "resolved": "đã có kết quả giải quyết",
}

NO_MATCH = "Không tìm thấy hồ sơ với mã hồ sơ và mã tra cứu đã nhắn. Hãy kiểm tra lại giấy biên nhận."
SYNTAX = "Sai cú pháp. Nhắn tin: KNTC <mã hồ sơ> <mã tra cứu> (in trên giấy biên nhận)."
THROTTLED = "Quá nhiều lần tra cứu từ số điện thoại này; hãy thử lại sau {minutes} phút."


def plain(text: str) -> str:
    """Vietnamese without diacritics (đ → d), in the GSM 03.38 alphabet: any other character is
    replaced by its closest letter, or by '?'."""
    text = text.replace("đ", "d").replace("Đ", "D")
    text = "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))
    out = []
    for ch in unicodedata.normalize("NFC", text):
        try:
            ch.encode(CODEC)
            out.append(ch)
        except UnicodeEncodeError:
            ascii_ = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(ascii_ if ascii_ and _gsm(ascii_) else "?")
    return "".join(out)


def _gsm(text: str) -> bool:
    try:
        text.encode(CODEC)
    except UnicodeEncodeError:
        return False
    return True


def septets(text: str) -> int:
    """The length of `text` in one GSM 03.38 message (an extension character such as '{' counts two)."""
    return len(text.encode(CODEC))


def fit_sms(body: str, unit: str, hint: str = "") -> str:
    """`body` (with "{unit}") made plain and fitted to one message: the hint is dropped first (the
    receipt says how to look up), then the unit's name shortened (with '..'); the facts never."""
    name = plain(unit)
    tail = plain(hint)
    if septets(plain(body.replace("{unit}", name)) + tail) <= SMS_LIMIT:
        return plain(body.replace("{unit}", name)) + tail
    for cut in range(len(name), 7, -1):
        shown = name if cut == len(name) else name[:cut].rstrip(" ,.") + ".."
        text = plain(body.replace("{unit}", shown))
        if septets(text) <= SMS_LIMIT:
            return text
    return plain(body.replace("{unit}", name[:8] + ".."))[:SMS_LIMIT]


def dmy(value: Any) -> str:
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return value.strftime("%d/%m/%Y") if isinstance(value, date) else ""


def _event_key(event: str, facts: dict[str, Any]) -> str:
    return f"extended_{facts.get('step') or 'resolve'}" if event == "extended" else event


def _hint_sms(code: str, service_number: str | None) -> str:
    return f" Tra cứu: nhắn KNTC {code} <mã tra cứu> gửi {service_number}." if service_number else ""


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str


def sms_text(event: str, facts: dict[str, Any], service_number: str | None = None) -> str:
    """The SMS for one outbox row, from its facts alone."""
    vi, _ = EVENTS[_event_key(event, facts)]
    on, due_on = dmy(facts.get("on")), dmy(facts.get("due_on"))
    body = f"Hồ sơ {facts['code']} " + vi.format(unit="{unit}", on=on, due_on=due_on)
    return fit_sms(body, str(facts.get("unit") or ""), _hint_sms(str(facts["code"]), service_number))


def mail(event: str, facts: dict[str, Any], lookup_url: str | None = None, service_number: str | None = None) -> Mail:
    """The e-mail for one outbox row, from its facts alone: Vietnamese first, then English."""
    vi, en = EVENTS[_event_key(event, facts)]
    values = {"unit": facts.get("unit") or "", "on": dmy(facts.get("on")), "due_on": dmy(facts.get("due_on"))}
    code = facts["code"]
    where_vi = [f"- trên trang tra cứu {lookup_url}" if lookup_url else "- trên trang tra cứu của Cổng thông tin",
                *([f"- hoặc nhắn tin KNTC {code} <mã tra cứu> gửi {service_number}"] if service_number else [])]
    lines = [
        "Kính gửi Ông/Bà,",
        "",
        f"Hồ sơ {code} " + vi.format(**values),
        "",
        "Ông/Bà có thể theo dõi tình trạng giải quyết bằng mã hồ sơ và mã tra cứu in trên giấy biên nhận:",
        *where_vi,
        "",
        "Thư này được gửi tự động theo đăng ký nhận thông báo của Ông/Bà; xin không trả lời thư này.",
        "Nội dung đơn và thông tin cá nhân không bao giờ được gửi qua thư điện tử hoặc tin nhắn.",
        "",
        "--",
        f"Case file {code} " + en.format(**values),
        "Follow it with the case code and the lookup secret printed on your receipt"
        + (f" at {lookup_url}." if lookup_url else "."),
        "This message was sent automatically because you asked to be notified; please do not reply.",
    ]
    return Mail(subject=f"Hồ sơ {code} {SUBJECTS[event]}", text="\n".join(lines) + "\n")


def lookup_reply(row: dict[str, Any]) -> str:
    """The SMS lookup's answer for a case found with its code and secret (kntc.public_lookup's row)."""
    status = STATUS_LABELS[Status(row["status"])][0]
    dates = [f"tiếp nhận {dmy(row['received_on'])}"]
    if row.get("accepted_on"):
        dates.append(f"thụ lý {dmy(row['accepted_on'])}")
    if row.get("resolved_on"):
        dates.append(f"giải quyết {dmy(row['resolved_on'])}")
    body = f"Hồ sơ {row['code']}: {status}. Đơn vị giải quyết: {{unit}}. Ngày " + ", ".join(dates) + "."
    return fit_sms(body, str(row.get("handling_unit") or ""))


def sms_number(raw: str | None) -> str | None:
    """A Vietnamese number that can receive an SMS, as the gateway takes it ("84" and the subscriber
    number, E.164 without the '+'); None when it is not one (a landline, a short or foreign number)."""
    if not raw:
        return None
    try:
        n = phonenumbers.parse(raw, "VN")
    except phonenumbers.NumberParseException:
        return None
    if n.country_code != 84 or not phonenumbers.is_valid_number(n):
        return None
    if phonenumbers.number_type(n) not in (phonenumbers.PhoneNumberType.MOBILE,
                                            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return None
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164).removeprefix("+")


def masked(number: str) -> str:
    """A number for a log line: its last three digits."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return "*" * max(len(digits) - 3, 0) + digits[-3:]
