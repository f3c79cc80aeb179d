"""Request bodies of the JSON API: validation happens here, before any SQL runs."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100_000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
IdNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]
UnitCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z0-9][A-Z0-9.-]{1,40}$")]
Kind = Literal["complaint", "denunciation", "recommendation", "multi"]
Channel = Literal["in_person", "letter", "email", "fax", "phone", "online", "transferred"]
Role = Literal["reception", "handling", "resolution", "head", "unit_admin", "external_reader", "sysadmin"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(Strict):
    username: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = Field(
        None, description="the second factor: 6 digits from the app, or a recovery code")


class PasswordChangeIn(Strict):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    new_password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class FactorBeginIn(Strict):
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="your current password")


class FactorConfirmIn(Strict):
    code: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9 ]{6,7}$")]


class LookupIn(Strict):
    """A citizen's lookup: sent in the body, so no URL (and no access log) ever holds the secret."""

    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=64)]
    secret: Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=64)]


class PartyIn(Strict):
    role: Literal["complainant", "denouncer", "petitioner", "representative"]
    party_kind: Literal["person", "organisation"] = "person"
    full_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=300)]
    id_number: IdNumber | None = Field(None, description="12-digit personal ID number (CCCD), when given")
    address: Short | None = None
    address_unit: UnitCode | None = Field(None, description="code of the unit of the address, e.g. X00004")
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 .-]{6,20}$")] | None = None
    email: EmailStr | None = None
    notify_consent: bool = Field(False, description="the citizen agreed, at reception, to be notified of the case's "
                                                    "progress (received, accepted, transferred, extended, resolved)")
    notify_channels: list[Literal["sms", "email"]] = Field(
        default_factory=list, max_length=2, validate_default=True,
        description="the channels the citizen chose: sms needs a Vietnamese mobile number in phone, email an e-mail "
                    "address; the messages carry only the case code, its status, the handling unit and a date")

    @field_validator("notify_channels")
    @classmethod
    def channels_need_consent_and_address(cls, v: list[str], info: ValidationInfo) -> list[str]:
        from core_app.notify.messages import sms_number

        if not info.data.get("notify_consent"):
            if v:
                raise ValueError("a channel was chosen without the citizen's consent (notify_consent)")
            return v
        if not v:
            raise ValueError("the citizen's consent needs at least one channel: sms or email")
        if "sms" in v and sms_number(info.data.get("phone")) is None:
            raise ValueError("notification by SMS needs a Vietnamese mobile number in phone")
        if "email" in v and not info.data.get("email"):
            raise ValueError("notification by e-mail needs an e-mail address in email")
        return sorted(set(v))


class CaseIn(Strict):
    kind: Kind
    subject: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]
    content: Text
    respondent: Short | None = None
    classification: int = Field(0, ge=0, le=2, description="0 normal, 1 confidential, 2 secret")
    denouncer_confidential: bool = False
    channel: Channel
    complaint_round: Literal[1, 2] = 1
    is_complex: bool = False
    is_remote_area: bool = False
    received_on: date | None = None
    people_count: int = Field(1, ge=1, le=10_000)
    reception_id: UUID | None = None
    parties: list[PartyIn] = Field(min_length=1, max_length=100)
    dedup_check_id: UUID | None = Field(None, description="the duplicate check (POST /api/dedup/check) this petition "
                                                          "is recorded after; recording it confirms a new matter")
    dedup_note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = Field(
        None, description="why it is new although a candidate was proposed")
    decision_known_on: date | None = Field(None, description="a complaint: the day the complainant learnt of the "
                                                             "decision or act (round 2: of the first decision); "
                                                             "starts the filing limit")

    @model_validator(mode="after")
    def denouncer_flag_needs_denunciation(self) -> CaseIn:
        if self.denouncer_confidential and self.kind not in ("denunciation", "multi"):
            raise ValueError("denouncer_confidential applies only to a denunciation")
        return self


class ReceptionIn(Strict):
    visitor_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=300)]
    visitor_id_number: IdNumber | None = None
    visitor_address: Short | None = None
    people_count: int = Field(1, ge=1, le=10_000)
    content: Text
    documents_received: Short | None = None
    prior_handling_agency: Short | None = None
    action_taken: Literal["accepted", "guided", "transferred", "recorded"] | None = None
    notes: Short | None = None


class PetitionIn(Strict):
    channel: Channel
    content: Text
    received_on: date | None = None
    people_count: int = Field(1, ge=1, le=10_000)
    reception_id: UUID | None = None
    dedup_check_id: UUID | None = Field(None, description="the duplicate check this petition is linked after")


class TransitionIn(Strict):
    action: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    version: int = Field(ge=1, description="the version you read; a stale one is refused with 409")
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)] | None = None
    summary: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000)] | None = None
    published_result: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000)] | None = None
    target_unit: UnitCode | None = None
    step: Literal["accept", "resolve"] | None = Field(None, description="extend: the step (default resolve)")
    level: Literal["complex", "especially_complex"] | None = Field(
        None, description="extend: how complex the case is (Denunciations Law art. 30)")
    decision_ref: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = Field(
        None, description="extend: number of the written extension decision")
    received_on: date | None = Field(None, description="second_round: the day the second complaint arrived")


class CaseUpdateIn(Strict):
    version: int = Field(ge=1)
    subject: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)] | None = None
    content: Text | None = None
    respondent: Short | None = None
    classification: int | None = Field(None, ge=0, le=2)
    is_complex: bool | None = None
    is_remote_area: bool | None = None
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000)]


class AssignIn(Strict):
    username: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=64)]
    duty: Literal["handling", "resolution", "verification"]


class AccountIn(Strict):
    username: Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True,
                                               pattern=r"^[a-z0-9][a-z0-9._-]{2,63}$")]
    full_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
    unit: UnitCode
    roles: list[Role] = Field(min_length=1)
    clearance: int = Field(0, ge=0, le=2)
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)] | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)] | None = None


class AccountActionIn(Strict):
    action: Literal["disable", "enable", "set_roles", "set_unit", "set_clearance", "reset_password", "reset_factor",
                    "end_sessions"]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=500)]
    roles: list[Role] | None = Field(None, min_length=1, description="for set_roles")
    unit: UnitCode | None = Field(None, description="for set_unit")
    clearance: int | None = Field(None, ge=0, le=2, description="for set_clearance")
