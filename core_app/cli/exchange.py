"""`kntc exchange clients register|list|add-credential|revoke-credential|revoke|set-scopes` and
`kntc exchange verify`: the connected systems of other bodies, and their hash-chained exchange log."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from core_app.cli.common import connect, console, err, fail

app = typer.Typer(
    help="Connected systems of other bodies (the exchange API) and their exchange log.", no_args_is_help=True
)
clients = typer.Typer(help="Register connected systems, rotate and revoke their credentials.", no_args_is_help=True)
app.add_typer(clients, name="clients")

Scopes = Annotated[str, typer.Option(help="comma-separated: read, submit, feed")]
Reason = Annotated[str, typer.Option(help="why (kept in the access log)", min=3)]


def _cert(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"cannot read the certificate {path}: {exc.strerror}")


def _owner(action: Any) -> Any:
    """Run `action(conn)` in one transaction as the owner; a refusal is one line, nothing written."""
    from core_app.exchange.clients import ClientError

    with connect("owner") as conn:
        try:
            with conn.transaction():
                return action(conn)
        except (ClientError, ValueError) as exc:
            fail(str(exc))


def _show(data: Any) -> None:
    console.print_json(json.dumps(data, default=str, ensure_ascii=False))


@clients.command("register")
def register(
    name: Annotated[str, typer.Option(help="the client_id: lower-case letters, digits and '-', e.g. toa-an-hn")],
    title: Annotated[str, typer.Option(help="the body and its system, as people read it")],
    unit: Annotated[str, typer.Option(help="code of the unit the client acts for (kntc unit list)")],
    cert: Annotated[Path, typer.Option(help="the client's certificate (PEM); self-signed is fine")],
    scopes: Scopes = "read,feed",
    clearance: Annotated[int, typer.Option(min=0, max=2, help="0 none, 1 confidential, 2 secret")] = 0,
    rate: Annotated[int, typer.Option(min=1, max=100000, help="requests a minute")] = 600,
) -> None:
    """Register a connected system bound to one unit, with its first certificate."""
    from core_app.exchange import clients as store

    scope_list = [s.strip() for s in scopes.split(",") if s.strip()]
    _show(_owner(lambda c: store.register(c, name, title, unit, scope_list, clearance, rate, _cert(cert))))


@clients.command("list")
def listing() -> None:
    """Every client with its unit, scopes and credentials."""
    from core_app.exchange import clients as store

    _show(_owner(store.listing))


@clients.command("add-credential")
def add_credential(
    name: Annotated[str, typer.Argument(help="the client")],
    cert: Annotated[Path, typer.Option(help="the new certificate (PEM)")],
    overlap_hours: Annotated[
        float, typer.Option(min=0, max=24 * 90, help="how long the current certificates stay valid beside the new one")
    ] = 24,
) -> None:
    """Rotate: add a certificate; the current ones stop after the overlap (no downtime)."""
    from core_app.exchange import clients as store

    _show(_owner(lambda c: store.add_credential(c, name, _cert(cert), timedelta(hours=overlap_hours))))


@clients.command("revoke-credential")
def revoke_credential(
    name: Annotated[str, typer.Argument(help="the client")],
    thumbprint: Annotated[str, typer.Option(help="the certificate's SHA-256 thumbprint (hex, 8 digits at least)")],
    reason: Reason,
) -> None:
    """Revoke one certificate now: its tokens are refused from the next request."""
    from core_app.exchange import clients as store

    n = _owner(lambda c: store.revoke_credential(c, name, thumbprint, reason))
    console.print(f"revoked {n} credential(s) of {name}")


@clients.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="the client")], reason: Reason) -> None:
    """Revoke the client: every token and credential is refused from the next request."""
    from core_app.exchange import clients as store

    _owner(lambda c: store.revoke(c, name, reason))
    console.print(f"revoked {name}")


@clients.command("set-scopes")
def set_scopes(name: Annotated[str, typer.Argument(help="the client")], scopes: Scopes) -> None:
    """Change what the client may do; its current tokens end (it asks for a new one)."""
    from core_app.exchange import clients as store

    scope_list = [s.strip() for s in scopes.split(",") if s.strip()]
    _show({"name": name, "scopes": _owner(lambda c: store.set_scopes(c, name, scope_list))})


@clients.command("set-webhook")
def set_webhook(
    name: Annotated[str, typer.Argument(help="the client")],
    url: Annotated[str, typer.Option(help="where events are posted (https://…)")],
) -> None:
    """Push the client's feed to its URL; prints the new signing secret once (give it to the body)."""
    from core_app.cli.common import load_settings
    from core_app.exchange import webhooks
    from core_app.exchange.clients import ClientError
    from core_app.settings import Settings

    settings = load_settings(Settings)
    secret, raw = webhooks.new_secret()

    def put(conn: Any) -> None:
        row = conn.execute(
            "SELECT id FROM kntc.exchange_client WHERE name = %s AND revoked_at IS NULL", (name,)
        ).fetchone()
        if row is None:
            raise ClientError(f"no client named {name!r} in force")
        conn.execute(
            "INSERT INTO kntc.exchange_webhook (client_id, url, secret) VALUES (%s, %s, %s) "
            "ON CONFLICT (client_id) DO UPDATE SET url = EXCLUDED.url, secret = EXCLUDED.secret, "
            "attempts = 0, next_at = now(), last_error = NULL, updated_at = now()",
            (row["id"], url, webhooks.seal(settings.secret_key, row["id"], raw)),
        )

    _owner(put)
    _show({"name": name, "url": url, "secret": secret})


@app.command("deliver")
def deliver(once: Annotated[bool, typer.Option(help="stop when no webhook is due")] = False) -> None:
    """Post the clients' feeds to their webhooks (a service: run it on one or more app hosts)."""
    import asyncio

    from core_app.cli.common import load_settings
    from core_app.exchange import webhooks
    from core_app.settings import Settings

    total = asyncio.run(webhooks.run(load_settings(Settings), once=once))
    console.print(f"delivered {total} event(s)")


@app.command("export")
def export_log(
    out: Annotated[Path, typer.Argument(help="the file to write (JSON lines); it must not exist")],
    bodies: Annotated[bool, typer.Option(help="include the kept messages (the owner's DSN)")] = False,
) -> None:
    """Write the exchange log for an auditor who verifies it away from the database."""
    from core_app.exchange import log

    if out.exists():
        fail(f"{out} exists: choose a new file")
    conn = connect("owner" if bodies else "readonly")
    with conn:
        conn.execute("SET search_path = pg_catalog, pg_temp")
        conn.commit()
        with conn.transaction(), out.open("x", encoding="utf-8") as fh:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            n = log.export(conn, fh, with_bodies=bodies)
    console.print(f"exported {n} messages to {out}")


@app.command("verify")
def verify(
    bodies: Annotated[
        bool,
        typer.Option(
            help="also check every kept message against its digest (needs the owner's DSN: the messages "
            "are the owner's to read)"
        ),
    ] = False,
    file: Annotated[
        Path | None,
        typer.Option(help="verify an export (kntc exchange export) instead of the database: no connection needed"),
    ] = None,
) -> None:
    """Recompute every client's chain of messages; exit 1 on any break."""
    from core_app.exchange import log

    if file is not None:
        try:
            with file.open(encoding="utf-8") as fh:
                rep = log.verify_file(fh)
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror}")
    else:
        conn = connect("owner" if bodies else "readonly")
        with conn:
            # Names resolve to the built-ins only: nothing the owner created can stand in for them.
            conn.execute("SET search_path = pg_catalog, pg_temp")
            conn.commit()
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                rep = log.verify(conn, with_bodies=bodies)
    for p in rep.problems:
        err.print(p, markup=False, highlight=False)
    summary = f"{rep.rows} messages in {rep.clients} chains" + (
        f", {rep.bodies_checked} kept messages checked" if rep.bodies_checked else ""
    )
    if not rep.ok:
        err.print(
            f"exchange log: {len(rep.problems)} problem(s); {summary} / nhật ký trao đổi bị sửa",
            style="red",
            markup=False,
        )
        raise typer.Exit(1)
    console.print(f"exchange log intact: {summary} / nhật ký trao đổi toàn vẹn")
