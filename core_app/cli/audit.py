"""`kntc audit verify|anchor|keygen|fingerprints`: check the trail, sign its heads, make a signing key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from core_app.cli.common import connect, console, err, fail

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


def _connect() -> Any:
    # The readonly role is enough for every command here.
    conn = connect("readonly")
    # Names resolve to the built-ins only: nothing the owner created can stand in for them.
    conn.execute("SET search_path = pg_catalog, pg_temp")
    conn.commit()
    return conn


@app.command("verify")
def verify(
    anchors: Annotated[Path | None, typer.Option(help="folder of signed anchors (kntc audit anchor): every "
                                                     "head signed there must still be on its chain")] = None,
    public_key: Annotated[Path | None, typer.Option(help="the anchors' Ed25519 public key (PEM); default: "
                                                         "anchor-key.pub in the anchors folder")] = None,
) -> None:
    """Recompute every chain, check the anchors, the audit triggers and functions; exit 1 on tampering."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from core_app.audit import anchors as anchor_files
    from core_app.audit import integrity
    from core_app.audit.chain import Problem, Report, walk

    rep = Report()
    wanted: dict[tuple[int, int], tuple[bytes, str]] = {}
    if anchors is not None:
        if not anchors.is_dir():
            fail(f"--anchors: no such folder {anchors}")
        try:
            key = anchor_files.load_public(public_key or anchors / "anchor-key.pub")
        except anchor_files.AnchorError as exc:
            fail(str(exc))
        found, bad = anchor_files.read_all(anchors, key)
        rep.problems.extend(Problem(-1, 0, "anchor", b) for b in bad)
        if not found and not bad:
            fail(f"--anchors: no anchor in {anchors} (kntc audit anchor writes them)")
        rep.anchors = len(found)
        wanted, conflicts = anchor_files.wanted(found)
        rep.problems.extend(Problem(-1, 0, "anchor", c) for c in conflicts)
    with _connect() as conn, conn.transaction():
        # One snapshot for the chains, the triggers and the rows.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        integrity.check_triggers(conn, rep)
        trusted = integrity.check_functions(conn, rep)
        total = conn.execute("SELECT count(*) AS n FROM kntc.audit_log").fetchone()["n"]
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as progress:
            task = progress.add_task("nhật ký / audit log", total=total)
            walk(conn, wanted, on_progress=lambda n: progress.update(task, completed=n), report=rep)
        if trusted:
            integrity.check_drift(conn, rep)
    if rep.ok:
        heads = sum(1 for _ in rep.heads)
        console.print(f"[green]chuỗi băm nguyên vẹn / chain intact[/green]: {rep.rows} rows in {heads} chains, "
                      f"{rep.anchors} anchors matched; triggers and functions as shipped", highlight=False)
        return
    for p in rep.problems:
        err.print(f"[red]{p.kind}[/red] {p.detail}", highlight=False)
    first = rep.problems[0]
    fail(f"nhật ký đã bị can thiệp / audit log tampered: {len(rep.problems)} problem(s); first: {first.detail}")


@app.command("anchor")
def anchor(
    key: Annotated[Path, typer.Option(help="Ed25519 private key (PEM) of this backup host (kntc audit keygen)")],
    dir: Annotated[Path, typer.Option("--dir", help="folder the signed anchor is written to")],
) -> None:
    """Sign the head of every chain and write it as one anchor file (run hourly on each backup host)."""
    from core_app.audit import anchors as anchor_files

    try:
        private = anchor_files.load_private(key)
    except anchor_files.AnchorError as exc:
        fail(str(exc))
    with _connect() as conn:
        database = conn.execute("SELECT current_database() AS d").fetchone()["d"]
        heads = [(r["chain"], r["id"], bytes(r["hash"]))
                 for r in conn.execute("SELECT chain, id, hash FROM kntc.audit_head()").fetchall()]
    path = anchor_files.write(dir, private, database, heads)
    console.print(f"anchor written / đã ghi mốc: {path} ({len(heads)} chains)", highlight=False)


@app.command("keygen")
def keygen(
    key: Annotated[Path, typer.Option(help="where the private key goes (mode 0600; never copied to a database host)")],
    public_key: Annotated[Path, typer.Option(help="where the public key goes (give it to whoever verifies)")],
) -> None:
    """Make the Ed25519 key pair a backup host signs its anchors with."""
    from core_app.audit import anchors as anchor_files

    try:
        anchor_files.keygen(key, public_key)
    except anchor_files.AnchorError as exc:
        fail(str(exc))
    console.print(f"key pair written: {key} (private), {public_key} (public)", highlight=False)


@app.command("fingerprints")
def fingerprints() -> None:
    """Print the fingerprints of the trail's functions in this database (for a migration that changes one)."""
    from core_app.audit import integrity

    with _connect() as conn:
        for name, prints in sorted(integrity.functions(conn).items()):
            for fp in prints:
                print(f'    "{name}": "{fp}",')
