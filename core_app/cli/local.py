"""`kntc local up|env|stop`: the embedded PostgreSQL of a checkout (`make app`, the tests)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core_app.cli.common import console, fail

if TYPE_CHECKING:
    from core_app.localdb import LocalCluster

app = typer.Typer(help="The embedded PostgreSQL of a checkout (`make app`).", no_args_is_help=True)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LOCAL = ROOT / ".data" / "local"

RootOpt = Annotated[Path, typer.Option(help="data folder")]
PortOpt = Annotated[int, typer.Option(help="PostgreSQL port on 127.0.0.1")]


def _cluster(root: Path, port: int) -> LocalCluster:
    from core_app.localdb import LocalCluster

    return LocalCluster(root=root, port=port)


def _ensure(cluster: LocalCluster) -> dict[str, str]:
    from core_app.localdb import LocalDbError

    try:
        return cluster.ensure()
    except LocalDbError as exc:
        fail(str(exc))


@app.command("up")
def local_up(
    root: RootOpt = DEFAULT_LOCAL,
    port: PortOpt = 55432,
    app_port: Annotated[int, typer.Option(help="HTTP port of the app on 127.0.0.1")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=16)] = 2,
    serve_app: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
) -> None:
    """Initialise (once) and start PostgreSQL, migrate, seed, then serve the app."""
    from core_app.cli.demo import load_demo, new_password, print_logins
    from core_app.cli.schema import migrate, seed_units
    from core_app.cli.serve import serve

    cluster = _cluster(root, port)
    os.environ.update(_ensure(cluster))
    migrate()
    seed_units()
    pw_file = root / "demo-password"
    if not pw_file.exists():
        pw_file.write_text(new_password())
        pw_file.chmod(0o600)
    password = pw_file.read_text().strip()
    load_demo(password, 24)
    print_logins(password)
    console.print(f"\nPostgreSQL 15: 127.0.0.1:{port} (data in {cluster.datadir})")
    console.print(f"KNTC app:      [bold]http://127.0.0.1:{app_port}/[/bold]  (API docs: /docs)")
    if serve_app:
        serve(host="127.0.0.1", port=app_port, workers=workers, dev=False)


@app.command("env")
def local_env(root: RootOpt = DEFAULT_LOCAL, port: PortOpt = 55432) -> None:
    """Print the environment of the local cluster (eval $(kntc local env))."""
    for k, v in _ensure(_cluster(root, port)).items():
        print(f"export {k}='{v}'")


@app.command("stop")
def local_stop(root: RootOpt = DEFAULT_LOCAL, port: PortOpt = 55432) -> None:
    """Stop the local PostgreSQL."""
    _cluster(root, port).stop()
    console.print("stopped")
