"""The whole API fuzzed from its own OpenAPI description, as officers of several roles.

Schemathesis generates requests for every operation in `/openapi.json` (valid and malformed
bodies, query strings and path parameters). Two properties must hold for every response:
- no server error: a 5xx must mean the service is down, never that the input was odd;
- nothing of what the officer may not see: canaries planted in another province's case, in a
  secret case of the officer's own commune and in a protected denouncer's identity never appear,
  whatever the request. The operations that take a case code are also driven with the canaries'
  codes, which a fuzzer would never guess.

Threat rows (runbooks/security.md): T36.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Officer, petition_body

HOME = "X00004"  # the fuzzing officers' commune (Hà Nội)
ELSEWHERE = "X26704"  # a commune of Hồ Chí Minh City
# Logging out would end the fuzzing officer's own session half-way through.
NOT_FUZZED = {("POST", "/api/auth/logout")}
EXAMPLES = 12


@dataclass(frozen=True)
class Canaries:
    codes: tuple[str, ...]
    always_hidden: tuple[str, ...]  # another province's case; a secret case
    denouncer: tuple[str, ...]  # hidden from all but those handling the case


def _plant(server: str, make_account: Callable[..., str]) -> Canaries:
    tag = secrets.token_hex(4).upper()
    far = Officer(server, make_account(ELSEWHERE, ["reception"]))
    far_subject, far_name = f"Khiếu nại CANARYFAR{tag}", f"Nguyễn Văn Canaryfar{tag.lower()}"
    far_idn = "079" + str(secrets.randbelow(10**9)).zfill(9)
    r = far.post("/api/cases", json=petition_body(
        subject=far_subject, parties=[{"role": "complainant", "full_name": far_name, "id_number": far_idn,
                                        "address": "Phú Mỹ", "address_unit": ELSEWHERE}]))
    assert r.status_code == 201, r.text
    far_code = r.json()["code"]

    cleared = Officer(server, make_account(HOME, ["reception"], clearance=2))
    secret_subject = f"Tố cáo CANARYSECRET{tag}"
    r = cleared.post("/api/cases", json=petition_body(kind="denunciation", subject=secret_subject,
                                                      classification=2))
    assert r.status_code == 201, r.text
    secret_code = r.json()["code"]

    handler = Officer(server, make_account(HOME, ["reception"]))
    den_name = f"Trần Thị Canaryden{tag.lower()}"
    den_idn = "001" + str(secrets.randbelow(10**9)).zfill(9)
    r = handler.post("/api/cases", json=petition_body(
        kind="denunciation", subject=f"Tố cáo cán bộ địa chính {tag}", denouncer_confidential=True,
        parties=[{"role": "denouncer", "full_name": den_name, "id_number": den_idn, "address": "Đội Cấn",
                  "address_unit": HOME}]))
    assert r.status_code == 201, r.text
    return Canaries(codes=(far_code, secret_code, r.json()["code"]),
                    always_hidden=(far_subject, far_name, far_idn, secret_subject),
                    denouncer=(den_name, den_idn))


@pytest.fixture(scope="module")
def canaries(server: str, make_account: Callable[..., str], owner_conn) -> Iterator[Canaries]:
    yield _plant(server, make_account)
    # Fuzzing the login and the lookup spends this machine's budget of failures (kntc.throttle):
    # the tests after this module start from zero, as another client would.
    owner_conn.execute("DELETE FROM kntc.throttle")


@pytest.fixture(scope="module")
def api_schema(server: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(server + "/openapi.json")


ROLES = {
    "reception": (HOME, ["reception"]),
    "handling+resolution": (HOME, ["handling", "resolution"]),
    "unit_admin": (HOME, ["unit_admin"]),
    "external_reader": ("court", ["external_reader"]),
}


@pytest.mark.parametrize("who", list(ROLES))
def test_fuzzing_every_operation_finds_no_server_error_and_no_hidden_data(
        who: str, server: str, api_schema: schemathesis.BaseSchema, canaries: Canaries,
        make_account: Callable[..., str], owner_conn) -> None:
    unit, roles = ROLES[who]
    if unit == "court":
        unit = owner_conn.execute("SELECT u.code FROM kntc.unit u JOIN kntc.unit p ON p.id = u.parent_id "
                                  "WHERE u.kind = 'court' AND p.code = 'T01' LIMIT 1").fetchone()["code"]
    # Each role starts with this machine's budget of failed logins and lookups untouched: the role
    # fuzzed before it spent it on purpose.
    owner_conn.execute("DELETE FROM kntc.throttle")
    me = Officer(server, make_account(unit, roles))
    forbidden = canaries.always_hidden + canaries.denouncer
    failures: list[str] = []
    session = httpx.Client(base_url=server, timeout=30, headers={"Authorization": f"Bearer {me.token}"})

    def check(method: str, path: str, resp: httpx.Response) -> None:
        if resp.status_code >= 500:
            failures.append(f"{method} {path} -> {resp.status_code}: {resp.text[:200]}")
        leaked = [c for c in forbidden if c in resp.text]
        if leaked:
            failures.append(f"{method} {path} -> {resp.status_code} carries {leaked}")

    def fuzz(op: schemathesis.APIOperation) -> None:
        takes_code = "{code}" in op.path

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(), code=st.sampled_from((None, *canaries.codes)))
        def run(case: schemathesis.Case, code: str | None) -> None:
            if takes_code and code is not None:
                case.path_parameters = {**(case.path_parameters or {}), "code": code}
            kwargs = case.as_transport_kwargs(base_url=server)
            headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "authorization"}
            resp = session.request(kwargs["method"], kwargs["url"], params=kwargs.get("params"),
                                   json=kwargs.get("json"), content=kwargs.get("data"),
                                   headers={**headers, "Authorization": f"Bearer {me.token}"})
            check(op.method.upper(), op.path, resp)

        run()

    for result in api_schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) not in NOT_FUZZED:
            fuzz(op)
    session.close()
    assert not failures, "\n".join(failures[:20])
