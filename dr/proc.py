"""Running things as the `postgres` system user.

PostgreSQL and pgBackRest refuse to (or must not) run as root: files in the data directory and
the repository belong to `postgres`. When `kntc-dr` runs as root, commands go through
`runuser -u postgres` and database sessions run in a forked child that has dropped to the
`postgres` uid, so that peer authentication works with Debian's stock pg_hba.conf
(`local all postgres peer`) and no password or ident map is needed.
"""

from __future__ import annotations

import multiprocessing
import os
import pwd
import subprocess
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from dr.errors import DrError, PostgresError, one_line

T = TypeVar("T")


def running_as_root() -> bool:
    return os.geteuid() == 0


def postgres_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise DrError("không có người dùng hệ thống 'postgres' / no 'postgres' system user: apt-get install "
                      "postgresql-15") from exc


def postgres_argv(argv: Sequence[str | os.PathLike[str]]) -> list[str]:
    cmd = [str(a) for a in argv]
    return ["runuser", "-u", "postgres", "--", *cmd] if running_as_root() else cmd


def run(argv: Sequence[str | os.PathLike[str]], *, timeout: float | None = 120, check: bool = False,
        what: str | None = None, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL client or server binary (never pgbackrest: see dr.pgbackrest) as postgres."""
    cmd = postgres_argv(argv)
    try:
        # From "/", as pgBackRest is run: initdb stops when postgres cannot read the caller's
        # directory (root's home, mode 0700).
        res = subprocess.run(cmd, text=True, capture_output=True, timeout=timeout, input=input_text, cwd="/")
    except subprocess.TimeoutExpired as exc:
        raise PostgresError(f"{what or Path(str(argv[0])).name}: quá thời gian / timed out after {timeout} s") from exc
    if check and res.returncode != 0:
        msg = (res.stderr or res.stdout).strip()
        raise PostgresError(f"{what or Path(str(argv[0])).name} thất bại / failed: {one_line(msg)}")
    return res


def chown_postgres(*paths: Path) -> None:
    if running_as_root():
        pg = postgres_user()
        for p in paths:
            os.chown(p, pg.pw_uid, pg.pw_gid)


def make_dir(path: Path, mode: int = 0o700) -> Path:
    """A directory that postgres owns (repository, scratch data directory, logs)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    chown_postgres(path)
    return path


def _become_postgres() -> pwd.struct_passwd:
    """Drop root for postgres with postgres's own groups (ssl-cert: the TLS files a repository host
    reads to reach the primary), as runuser would."""
    pg = postgres_user()
    os.initgroups(pg.pw_name, pg.pw_gid)
    os.setgid(pg.pw_gid)
    os.setuid(pg.pw_uid)
    return pg


def _child(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        pg = _become_postgres()
        os.environ["HOME"] = pg.pw_dir
        os.environ["USER"] = os.environ["LOGNAME"] = "postgres"
        conn.send(("ok", fn(*args, **kwargs)))
    except DrError as exc:
        conn.send(("dr", type(exc).__name__, str(exc)))
    except BaseException as exc:
        conn.send(("exc", type(exc).__name__, str(exc), traceback.format_exc()))
    finally:
        conn.close()


def call_as_postgres(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `fn` with the postgres uid (in a forked child when we are root) and return its result.

    Results and arguments must be picklable. Errors come back as one-line DrErrors.
    """
    if not running_as_root():
        return fn(*args, **kwargs)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args, kwargs), daemon=True)
    proc.start()
    child.close()
    try:
        msg = parent.recv()
    except EOFError as exc:
        proc.join(5)
        raise PostgresError(f"{fn.__name__}: tiến trình con thoát / child exited with {proc.exitcode}") from exc
    finally:
        proc.join(30)
    if msg[0] == "ok":
        return msg[1]
    if msg[0] == "dr":
        errors = {c.__name__: c for c in DrError.__subclasses__()}
        raise errors.get(msg[1], DrError)(msg[2])
    if os.environ.get("KNTC_DEBUG"):
        print(msg[3])
    raise PostgresError(f"{fn.__name__}: {msg[1]}: {one_line(msg[2])}")


def _drop_then(fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    if running_as_root():
        _become_postgres()
    fn(*args)


def start_as_postgres(fn: Callable[..., Any], *args: Any) -> multiprocessing.process.BaseProcess:
    """Start `fn(*args)` in a background child with the postgres uid (e.g. the drill's writer).

    Arguments are inherited through fork, not pickled, so open files and Events can be passed.
    """
    p = multiprocessing.get_context("fork").Process(target=_drop_then, args=(fn, args), daemon=True)
    p.start()
    return p
