"""RFC 9457 problem details: every refusal of the exchange API, with field errors as JSON pointers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.responses import Response

MEDIA_TYPE = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    503: "Service unavailable",
}


class Problem(Exception):
    """An answer other than success: status, a code (the `type`'s last part), what went wrong."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.errors, self.headers, self.extra = errors, headers or {}, extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": f"urn:kntc:problem:{self.code}",
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }
        if self.errors:
            out["errors"] = self.errors
        return out


def pointer(parts: Iterable[Any]) -> str:
    """A JSON pointer (RFC 6901) to a field."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def from_validation(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> Problem:
    return from_validation_errors(exc.errors(), prefix)


def from_validation_errors(found: Iterable[Any], prefix: tuple[Any, ...] = ()) -> Problem:
    """Pydantic's errors as pointers; FastAPI's say where (body, query, header) first: it is kept."""
    errors = [{"pointer": pointer((*prefix, *e.get("loc", ()))), "detail": str(e.get("msg", ""))} for e in found]
    return Problem(422, "invalid_fields", "some fields are missing or invalid: see errors", errors=errors)


def dumps(body: Any) -> bytes:
    return orjson.dumps(body, default=str)


def response(problem: Problem) -> Response:
    return Response(dumps(problem.body()), status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers)
