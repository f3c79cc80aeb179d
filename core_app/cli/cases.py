"""`kntc import FILE.csv` and `kntc generate`: case files in bulk, as the owner role.

Both connect in autocommit: each imported row, and each generated chunk, is a transaction of its own.
"""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from core_app.cli.common import connect, console, err, fail

app = typer.Typer()


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=False)


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="CSV export of the legacy system (see runbooks/legacy-import.md)")],
    dry_run: Annotated[bool, typer.Option(help="check and match everything, then roll back")] = False,
) -> None:
    """Import legacy case files: all rows or none; every rejected row is reported with its line."""
    from core_app.dedup.legacy_import import run

    if not file.is_file():
        fail(f"no such file: {file}")
    with connect("owner", autocommit=True) as conn:
        out = run(conn, file, date.today(), dry_run=dry_run)
    if out.rejected:
        for line, reason in out.rejected:
            err.print(f"dòng / line {line}: {reason}", highlight=False, markup=False)
        if out.imported and not dry_run:
            fail(f"{len(out.rejected)} dòng bị từ chối, {len(out.imported)} dòng đã nhập; sửa rồi chạy lại cùng lệnh / "
                 f"{len(out.rejected)} row(s) rejected, {len(out.imported)} imported: fix them and run the same "
                 "command again (imported rows are skipped)")
        fail(f"{len(out.rejected)} dòng bị từ chối, không nhập dòng nào / {len(out.rejected)} row(s) rejected, "
             "nothing imported")
    new = sum(1 for _, _, how in out.imported if how == "new")
    linked = len(out.imported) - new
    for line, code, possible in out.review:
        console.print(f"dòng / line {line}: {code} có thể trùng / may duplicate {possible}", highlight=False)
    verb = "kiểm tra xong (chưa ghi) / checked, nothing written" if dry_run else "đã nhập / imported"
    console.print(f"{verb}: {new} hồ sơ mới / new case files, {linked} đơn gộp vào hồ sơ có sẵn / petitions "
                  f"joined to existing case files, {len(out.review)} cần xem lại / to review", highlight=False)


@app.command("generate")
def generate(
    cases: Annotated[int, typer.Option(min=1, max=20_000_000, help="case files to generate")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="same seed, same data")] = 20180315,
    chunk: Annotated[int, typer.Option(min=100, max=500_000, help="rows per COPY transaction")] = 20_000,
    probes: Annotated[Path | None, typer.Option(help="write sample queries (JSON) for benchmarks here")] = None,
    national: Annotated[bool, typer.Option(help="with the officers' work on each case: timeline, time limits, "
                                                "assignments, receptions (import the roster first)")] = False,
    writers: Annotated[int, typer.Option(min=1, max=16, help="--national: connections loading at once")] = 2,
    province: Annotated[str | None, typer.Option(help="--national: only this province's units (e.g. T01)")] = None,
) -> None:
    """Synthetic national data set, loaded with COPY as the owner role (for benchmarks and demos).

    Each chunk is one transaction holding one audit chain's lock: run it on a database of its own,
    not on one that officers are using. With --national the same command run again resumes a
    stopped load (same seed, same data).
    """
    from core_app.dedup.generator import generate as run

    if national:
        _national(cases, seed, min(chunk, 5_000), writers, province)
        return

    with connect("owner", autocommit=True) as conn, connect("owner", autocommit=True) as writer:
        writer.execute("SET maintenance_work_mem = '512MB'")
        # GIN indexes take inserts into a pending list merged in bulk: a larger list, fewer merges.
        writer.execute("SET gin_pending_list_limit = '64MB'")
        t0 = time.monotonic()
        with _progress() as progress:
            task = progress.add_task("hồ sơ / case files", total=cases)
            stats = run(conn, cases, seed, date.today(),
                        chunk_size=chunk, on_chunk=lambda k: progress.advance(task, k), writer_conn=writer)
        load_s = time.monotonic() - t0
        t1 = time.monotonic()
        for table in ("case_file", "party", "dedup_key", "petition", "audit_log"):
            conn.execute(f"VACUUM (ANALYZE) kntc.{table}")
        vacuum_s = time.monotonic() - t1
    if probes:
        probes.write_text(json.dumps(stats.probes, ensure_ascii=False, default=str))
    console.print(f"generated {stats.cases} case files ({stats.duplicates} unlinked duplicates), {stats.parties} "
                  f"parties, {stats.petitions} petitions; generate+load {load_s:.1f} s, "
                  f"vacuum+analyze {vacuum_s:.1f} s")
    console.print(f"generate_load_seconds={load_s:.1f} vacuum_analyze_seconds={vacuum_s:.1f}", highlight=False)


def _national(cases: int, seed: int, chunk: int, writers: int, province: str | None) -> None:
    from core_app.dedup.bulk_load import NationalError
    from core_app.dedup.bulk_load import national as run

    t0 = time.monotonic()
    with _progress() as progress:
        task = progress.add_task("hồ sơ / case files", total=cases)
        phase: dict[str, int] = {}

        def on_phase(name: str, total: int) -> None:
            label = {"indexes": "chỉ mục / indexes", "vacuum": "vacuum analyze"}[name]
            phase["task"] = progress.add_task(label, total=total)

        try:
            out = run(lambda: connect("owner", autocommit=True), cases, seed, date.today(), chunk=chunk,
                      writers=writers, province=province, on_cases=lambda k: progress.advance(task, k),
                      on_phase=on_phase, on_index=lambda _name: progress.advance(phase["task"], 1))
        except NationalError as exc:
            fail(str(exc))
    wall = time.monotonic() - t0
    rows = sum(out.rows.values())
    console.print(", ".join(f"{n:,} {t}" for t, n in out.rows.items()), highlight=False)
    busy = sum(out.spent.values()) or 1.0
    console.print("writers' time: " + ", ".join(f"{t} {v / busy:.0%}" for t, v in out.spent.items()), highlight=False)
    if out.skipped:
        console.print(f"{out.skipped:,} case files were loaded by an earlier run (skipped)", highlight=False)
    console.print(f"national_load cases={out.cases} rows={rows} load_seconds={out.load_s:.1f} "
                  f"rows_per_second={rows / max(out.load_s, 1e-9):.0f} deferred_indexes={out.deferred} "
                  f"index_seconds={out.index_s:.1f} vacuum_seconds={out.vacuum_s:.1f} wall_seconds={wall:.1f}",
                  highlight=False)
