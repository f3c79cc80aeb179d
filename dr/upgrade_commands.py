"""`kntc-dr upgrade …`: a major PostgreSQL upgrade by logical replication (runbooks/upgrade-postgres.md).

The clusters are named by libpq conninfo strings of a superuser session on the database being
upgraded. They come from the environment (KNTC_UPGRADE_SOURCE, KNTC_UPGRADE_TARGET) or options;
keep passwords in a ~/.pgpass file rather than in either, since options are visible in `ps`.
Each step prints what it did as one JSON line on stdout; nothing printed holds a password.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer

from dr import upgrade

app = typer.Typer(help="Nâng cấp phiên bản chính PostgreSQL / a major PostgreSQL upgrade (blue/green)",
                  no_args_is_help=True)

Source = Annotated[str, typer.Option("--source", envvar="KNTC_UPGRADE_SOURCE", show_envvar=True,
                                     help="cụm cũ / the old cluster (conninfo, superuser, the database)")]
Target = Annotated[str, typer.Option("--target", envvar="KNTC_UPGRADE_TARGET", show_envvar=True,
                                     help="cụm mới / the new cluster (conninfo, superuser, the database)")]
SourceSeen = Annotated[str | None, typer.Option(
    "--source-from-target", envvar="KNTC_UPGRADE_SOURCE_FROM_TARGET",
    help="cụm cũ nhìn từ cụm mới / host, port, TLS of the old cluster as the new one reaches it")]
TargetSeen = Annotated[str | None, typer.Option(
    "--target-from-source", envvar="KNTC_UPGRADE_TARGET_FROM_SOURCE",
    help="cụm mới nhìn từ cụm cũ / host, port, TLS of the new cluster as the old one reaches it")]
Timeout = Annotated[float, typer.Option("--timeout", min=1, help="giây chờ tối đa / seconds to wait at most")]


def _ends(source: str, target: str, source_seen: str | None, target_seen: str | None) -> upgrade.Endpoints:
    return upgrade.Endpoints(source, target, source_seen, target_seen)


def _print(step: upgrade.Step | dict) -> None:
    data = dataclasses.asdict(step) if isinstance(step, upgrade.Step) else step
    if "seconds" in data:
        data["seconds"] = round(data["seconds"], 3)
    print(json.dumps(data, ensure_ascii=False, sort_keys=True))


@app.command()
def check(source: Source, target: Target) -> None:
    """Kiểm tra hai cụm / whether both clusters are ready; every problem in one line."""
    _print(upgrade.check(_ends(source, target, None, None)))


@app.command()
def prepare(source: Source, target: Target, source_seen: SourceSeen = None,
            pg_bin: Annotated[Path, typer.Option(envvar="KNTC_UPGRADE_PG_BIN", show_envvar=True,
                                                 help="chương trình của phiên bản mới / the new version's programs")]
            = Path("/usr/lib/postgresql/17/bin")) -> None:
    """Chép lược đồ, bắt đầu sao chép logic / copy the schema, publish, subscribe (copies every row)."""
    _print(upgrade.prepare(_ends(source, target, source_seen, None), upgrade.local_tools(pg_bin)))


@app.command()
def status(source: Source, target: Target,
           back: Annotated[bool, typer.Option("--back", help="chiều ngược / the way back, after a cut-over")] = False,
           wait: Annotated[bool, typer.Option("--wait", help="chờ đến khi sẵn sàng / until every table follows")]
           = False, timeout: Timeout = 3600) -> None:
    """Trạng thái sao chép / the subscription's tables, state and lag."""
    pub, sub, name = (target, source, upgrade.BACK) if back else (source, target, upgrade.FORWARD)
    if wait:
        _print(upgrade.wait_ready(pub, sub, name, timeout, log=lambda s: typer.echo(s, err=True)))
    else:
        _print(upgrade.status(pub, sub, name))


@app.command()
def cutover(source: Source, target: Target, source_seen: SourceSeen = None, target_seen: TargetSeen = None,
            timeout: Timeout = 60) -> None:
    """Chuyển sang cụm mới / the new cluster becomes the primary; the old one follows it as the way back."""
    _print(upgrade.cutover(_ends(source, target, source_seen, target_seen), timeout))


@app.command()
def rollback(source: Source, target: Target, timeout: Timeout = 60) -> None:
    """Quay lại cụm cũ / back to the old cluster, with what the new one took since the cut-over."""
    _print(upgrade.rollback(_ends(source, target, None, None), timeout))


@app.command()
def abandon(source: Source, target: Target) -> None:
    """Bỏ dở trước khi chuyển / give up before the cut-over: nothing follows, no slot is left behind."""
    _print(upgrade.abandon(_ends(source, target, None, None)))


@app.command()
def finish(source: Source, target: Target) -> None:
    """Giữ cụm mới / keep the new cluster: the old one stops following and stays read-only."""
    _print(upgrade.finish(_ends(source, target, None, None)))


@app.command()
def reset(source: Source, target: Target) -> None:
    """Làm mới cơ sở dữ liệu đích / make the new database anew (empty) before another `prepare`."""
    _print(upgrade.reset(_ends(source, target, None, None)))
