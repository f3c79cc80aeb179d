"""`kntc deadlines rules list|edit`: the statutory limits as the service holds them, and a new version of
one by a central system administrator.

`edit` is a client of the service's API, logged in as the administrator's own account (password and,
when the account has one, the second-factor code): the database decides who may edit
(`kntc.deadline_rule_edit`), the edit is in the audit chain under that account, and every application
host reads it on its next request, as an edit made on the web page is.
"""

from __future__ import annotations

import os
from datetime import date
from typing import Annotated, Any

import typer

from core_app.cli.common import fail

app = typer.Typer(help="Deadline rules: list them; a new version of one (central system administrators).",
                  no_args_is_help=True)

Server = Annotated[str, typer.Option("--server", envvar="KNTC_URL",
                                     help="the case service's address, e.g. https://kntc.example")]


def _client(server: str) -> Any:
    import httpx

    return httpx.Client(base_url=server.rstrip("/"), timeout=30)


def _message(r: Any) -> str:
    try:
        body = r.json()
    except ValueError:
        return f"HTTP {r.status_code}"
    if isinstance(body, dict):
        msg = body.get("message") or body.get("detail") or body
        en = body.get("message_en")
        return f"{msg}{' / ' + en if en else ''}"
    return str(body)


@app.command("list")
def list_rules(server: Server = "http://127.0.0.1:8000") -> None:
    """Each rule as in force today: code, version, effective date, limit, unit, legal basis (tab-separated)."""
    import httpx

    try:
        with _client(server) as c:
            r = c.get("/api/deadlines/rules")
    except httpx.HTTPError as exc:
        fail(f"cannot reach {server}: {exc}")
    if r.status_code != 200:
        fail(_message(r))
    for rule in r.json():
        typer.echo(f"{rule['code']}\tv{rule['version']}\t{rule['effective_from']}\t{rule['days']} {rule['day_unit']}"
                   f"\t{rule['legal_basis']}")


@app.command("edit")
def edit(code: Annotated[str, typer.Argument(help="the rule, e.g. TC-NOTIFY")],
         effective_from: Annotated[str, typer.Option(help="YYYY-MM-DD: steps starting from that day use it")],
         legal_basis: Annotated[str, typer.Option(help="the law, article and clause of the new version")],
         reason: Annotated[str, typer.Option(help="why (10 characters at least)")],
         username: Annotated[str, typer.Option(help="your own administrator account")],
         server: Server = "http://127.0.0.1:8000",
         days: Annotated[int | None, typer.Option()] = None,
         day_unit: Annotated[str | None, typer.Option(help="days or working_days")] = None,
         complex_days: Annotated[int | None, typer.Option()] = None,
         remote_days: Annotated[int | None, typer.Option()] = None,
         remote_complex_days: Annotated[int | None, typer.Option()] = None,
         extension_days: Annotated[int | None, typer.Option()] = None,
         max_extensions: Annotated[int | None, typer.Option()] = None,
         end_events: Annotated[str | None, typer.Option(help="comma-separated, e.g. accept,forward")] = None,
         factor_code: Annotated[str | None, typer.Option("--code", help="the second-factor code")] = None) -> None:
    """A new version of rule CODE (only the fields given change). The password is read from
    KNTC_PASSWORD, or asked for."""
    import httpx

    try:
        date.fromisoformat(effective_from)
    except ValueError:
        fail("--effective-from must be a date, YYYY-MM-DD")
    password = os.environ.get("KNTC_PASSWORD") or typer.prompt("Mật khẩu / password", hide_input=True)
    body: dict[str, Any] = {"effective_from": effective_from, "legal_basis": legal_basis, "reason": reason}
    for key, value in (("days", days), ("day_unit", day_unit), ("complex_days", complex_days),
                       ("remote_days", remote_days), ("remote_complex_days", remote_complex_days),
                       ("extension_days", extension_days), ("max_extensions", max_extensions)):
        if value is not None:
            body[key] = value
    if end_events:
        body["end_events"] = [e.strip() for e in end_events.split(",") if e.strip()]
    try:
        with _client(server) as c:
            r = c.post("/api/auth/login", json={"username": username, "password": password,
                                                **({"code": factor_code} if factor_code else {})})
            if r.status_code != 200:
                fail(f"đăng nhập không được / login refused: {_message(r)}")
            token = r.json()["token"]
            try:
                r = c.post(f"/api/deadlines/rules/{code}/versions", json=body,
                           headers={"Authorization": f"Bearer {token}"})
            finally:
                c.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        fail(f"cannot reach {server}: {exc}")
    if r.status_code != 201:
        fail(f"không sửa được / refused ({r.status_code}): {_message(r)}")
    got = r.json()
    typer.echo(f"{got['code']}\tv{got['version']}\thiệu lực từ / effective from {got['effective_from']}")
