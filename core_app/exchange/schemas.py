"""What a connected system sends and gets: validated here, before any SQL runs."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from core_app.api.schemas import Channel, Kind, PartyIn, Short, Strict, Text

ExternalId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")]
Status = Literal[
    "received", "in_handling", "accepted", "verifying", "resolved", "closed", "guided", "filed", "returned"
]
SCOPES = ("read", "submit", "feed")
MAX_BATCH = 100


class Submission(Strict):
    """A petition or case a body received, with how far it got: created the first time its
    `external_id` is seen, its handling and resolution results updated afterwards."""

    external_id: ExternalId = Field(description="the body's own id of the case, unique within the body")
    kind: Kind
    subject: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]
    content: Text
    respondent: Short | None = None
    classification: int = Field(
        0, ge=0, le=2, description="0 normal, 1 confidential, 2 secret (at most the client's clearance)"
    )
    denouncer_confidential: bool = False
    channel: Channel
    complaint_round: Literal[1, 2] = 1
    is_complex: bool = False
    is_remote_area: bool = False
    received_on: date
    people_count: int = Field(1, ge=1, le=10_000)
    parties: list[PartyIn] = Field(min_length=1, max_length=100)
    status: Status = "received"
    accepted_on: date | None = None
    resolved_on: date | None = None
    closed_on: date | None = None
    resolution_summary: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)] | None
    ) = None

    @model_validator(mode="after")
    def consistent(self) -> Submission:
        if self.denouncer_confidential and self.kind not in ("denunciation", "multi"):
            raise ValueError("denouncer_confidential applies only to a denunciation")
        for name in ("accepted_on", "resolved_on", "closed_on"):
            day = getattr(self, name)
            if day is not None and day < self.received_on:
                raise ValueError(f"{name} is before received_on")
        return self


class Batch(Strict):
    """Up to 100 submissions; each is answered on its own (`results[i]` for `items[i]`)."""

    items: list[Submission] = Field(min_length=1, max_length=MAX_BATCH)


class RawBatch(Strict):
    """The batch as first read: items are validated one by one, so one bad item spoils only itself."""

    items: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)
