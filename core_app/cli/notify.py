"""`kntc notify deliver|status|gateway-sim`: citizens' notifications from the outbox, how the queue
stands, and the local SMS gateway of the lab and the tests (runbooks/sms-gateway.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from core_app.cli.common import connect, console, fail

app = typer.Typer(help="Citizens' notifications by SMS and e-mail, and the local SMS gateway.", no_args_is_help=True)


@app.command("deliver")
def deliver(
    once: Annotated[bool, typer.Option(help="stop when nothing is due")] = False,
    batch: Annotated[int, typer.Option(min=1, max=500, help="messages claimed per round")] = 20,
    lease_seconds: Annotated[
        int, typer.Option(min=5, max=3600, help="how long a claimed message is this worker's before another may "
                                                "take it (a worker that died)")] = 60,
) -> None:
    """Send the queued notifications (a service: run it on one or more app hosts)."""
    import asyncio
    import logging

    from core_app import logsafe
    from core_app.cli.common import load_settings
    from core_app.notify import worker
    from core_app.settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logsafe.install()
    settings = load_settings(Settings)
    try:
        total = asyncio.run(worker.run(settings, once=once, batch=batch, lease_s=lease_seconds))
    except ValueError as exc:
        fail(str(exc))
    console.print(f"handled {total} notification(s)")


@app.command("status")
def status() -> None:
    """How the outbox stands per channel and status: counts, messages due now, the oldest due."""
    from rich.table import Table

    from core_app.repo.notifications import QUEUE_STATE

    with connect("readonly") as conn:
        rows = conn.execute(QUEUE_STATE).fetchall()
    table = Table("channel", "status", "messages", "due now", "oldest due", "most attempts")
    for r in rows:
        table.add_row(r["channel"], r["status"], str(r["messages"]), str(r["due"]),
                      str(r["oldest_due"] or ""), str(r["most_attempts"]))
    console.print(table)


@app.command("requeue")
def requeue(
    since: Annotated[str, typer.Option(help="given up at or after this time, ISO 8601 (2026-03-05T08:00+07:00)")],
    channel: Annotated[str | None, typer.Option(help="sms or email (default: both)")] = None,
) -> None:
    """Queue again the messages given up since a time (after an outage of the gateway or the relay)."""
    from core_app.repo.notifications import REQUEUE

    try:
        when = datetime.fromisoformat(since)
    except ValueError:
        fail(f"--since {since!r} is not an ISO 8601 time, e.g. 2026-03-05T08:00+07:00")
    if when.tzinfo is None:
        fail("--since needs its offset, e.g. 2026-03-05T08:00+07:00 (Vietnam's time)")
    if channel not in (None, "sms", "email"):
        fail("--channel is sms or email")
    with connect("owner") as conn, conn.transaction():
        rows = conn.execute(REQUEUE, {"since": when, "channel": channel}).fetchall()
    console.print(f"queued again: {len(rows)} message(s)")


@app.command("gateway-sim")
def gateway_sim(
    port: Annotated[int, typer.Option(min=1, max=65535)] = 9099,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    api_key: Annotated[str, typer.Option(envvar="KNTC_NOTIFY_SMS_API_KEY", help="the key the platform must send")] = "",
    platform_url: Annotated[
        str, typer.Option(help="the platform's base URL, for delivery reports and citizens' messages")] = "",
    callback_key: Annotated[
        str, typer.Option(envvar="KNTC_NOTIFY_SMS_CALLBACK_KEY", help="the key callbacks are signed with")] = "",
    report_delay: Annotated[float, typer.Option(min=0, help="seconds before a delivery report")] = 0.2,
) -> None:
    """Run the local SMS gateway (lab and tests only: state in memory, failure injection on /_sim/)."""
    import uvicorn

    from core_app.notify.gateway_sim import create_app

    if len(api_key) < 16:
        fail("--api-key (or KNTC_NOTIFY_SMS_API_KEY) of 16 characters at least is required")
    sim = create_app(api_key, platform_url or None, callback_key or None, report_delay)
    uvicorn.run(sim, host=host, port=port, log_level="warning")
