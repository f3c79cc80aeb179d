"""The exchange API fuzzed from its published OpenAPI document (`/api/v1/openapi.json`), through the
TLS gateway, as a connected system holding every scope.

For every response: no server error, and nothing the client may not see (canaries planted in another
province's case, a secret case of its own area and a protected denouncer's identity). Operations
that take a case code are also driven with the canaries' codes.

Threat rows: T65, T66, T67.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connect_client import Connection
from tests.exchange.conftest import Pki, Registered, id_number

EXAMPLES = 15


def _plant(xofficer: Callable[..., Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    tag = secrets.token_hex(4).upper()
    far_name, far_id, secret_subject, den_name, den_id = (
        f"Nguyễn Canaryfar{tag.lower()}",
        id_number(),
        f"Tố cáo CANARYSECRET{tag}",
        f"Trần Canaryden{tag.lower()}",
        id_number(),
    )
    codes = []
    for officer, body in (
        (
            xofficer("T79", ["reception"]),
            {
                "kind": "complaint",
                "subject": f"Khiếu nại CANARYFAR{tag}",
                "parties": [{"role": "complainant", "full_name": far_name, "id_number": far_id}],
            },
        ),
        (
            xofficer("X00004", ["reception"], clearance=2),
            {
                "kind": "denunciation",
                "subject": secret_subject,
                "classification": 2,
                "parties": [{"role": "denouncer", "full_name": "Ai Đó"}],
            },
        ),
        (
            xofficer("X00004", ["reception"]),
            {
                "kind": "denunciation",
                "subject": f"Tố cáo {tag}",
                "denouncer_confidential": True,
                "parties": [{"role": "denouncer", "full_name": den_name, "id_number": den_id}],
            },
        ),
    ):
        r = officer.post("/api/cases", json={"content": "Nội dung", "channel": "letter", **body})
        assert r.status_code == 201, r.text
        codes.append(r.json()["code"])
    return tuple(codes), (far_name, far_id, f"CANARYFAR{tag}", secret_subject, den_name, den_id)


@pytest.fixture(scope="module")
def schema(gateway: str, pki: Pki) -> schemathesis.BaseSchema:
    import httpx

    doc = httpx.get(gateway + "/api/v1/openapi.json", verify=ssl.create_default_context(cafile=str(pki.ca))).json()
    return schemathesis.openapi.from_dict(doc)


def test_fuzzing_the_exchange_api_finds_no_server_error_and_no_hidden_data(
    schema: schemathesis.BaseSchema,
    register: Callable[..., Registered],
    connect: Callable[..., Connection],
    xofficer: Callable[..., Any],
    gateway: str,
) -> None:
    codes, forbidden = _plant(xofficer)
    client = register("T01-TAND", rate=100000)
    failures: list[str] = []
    with connect(client) as conn:
        token = conn.token()

        def fuzz(op: schemathesis.APIOperation) -> None:
            takes_code = "{code}" in op.path

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(), code=st.sampled_from((None, *codes)))
            def run(case: schemathesis.Case, code: str | None) -> None:
                if takes_code and code is not None:
                    case.path_parameters = {**(case.path_parameters or {}), "code": code}
                kw = case.as_transport_kwargs(base_url=gateway)
                headers = {k: v for k, v in (kw.get("headers") or {}).items() if k.lower() != "authorization"}
                data = kw.get("data")
                try:
                    resp = conn.http.request(
                        kw["method"],
                        kw["url"],
                        params=kw.get("params"),
                        json=kw.get("json"),
                        data=data if isinstance(data, dict) else None,
                        content=data if not isinstance(data, dict) else None,
                        headers={**headers, "Authorization": f"Bearer {token}"},
                    )
                except UnicodeEncodeError:
                    return  # a header no HTTP client can send
                if resp.status_code >= 500:
                    failures.append(f"{op.method.upper()} {op.path} -> {resp.status_code}: {resp.text[:200]}")
                leaked = [c for c in forbidden if c in resp.text]
                if leaked:
                    failures.append(f"{op.method.upper()} {op.path} -> {resp.status_code} carries {leaked}")

            run()

        for result in schema.get_all_operations():
            fuzz(result.ok())
    assert not failures, "\n".join(failures[:20])
