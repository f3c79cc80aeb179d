"""Where the app's CPU goes while a benchmark drives it: py-spy samples every worker of the server while
it runs Python, and each sample is given to the package of the code running at that instant (for a
call into C that keeps the interpreter, such as the driver's, the Python function that made it).

`make bench-app` reports CPU per request; this says whose code it is: the case service's own, the
database driver's, the web framework's, the server's and event loop's, the serialisers'. A change
meant to cut app CPU shows where it should, and one that moved the cost elsewhere shows that too.

    python -m loadtests.bench_app --profile     # each endpoint's share table, and the raw stacks in
                                                # loadtests/reports/profile-<stamp>/ (flamegraph.pl input)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

# A frame of py-spy's raw output: "function (path/to/file.py:line)".
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):\d+\)$")
SERVER = "server and event loop (granian, uvloop, asyncio)"
# Packages by where their files live (py-spy's full file names), first match wins; the case service is
# matched last, so that a file of a library installed under a folder of that name counts as the library's.
PACKAGES: tuple[tuple[str, str], ...] = (
    ("psycopg_pool/", "driver (psycopg, its pool)"),
    ("psycopg/", "driver (psycopg, its pool)"),
    ("psycopg_binary/", "driver (psycopg, its pool)"),
    ("fastapi/", "framework (FastAPI, Starlette)"),
    ("starlette/", "framework (FastAPI, Starlette)"),
    ("pydantic", "serialisers (pydantic, orjson, json)"),
    ("orjson", "serialisers (pydantic, orjson, json)"),
    ("/json/", "serialisers (pydantic, orjson, json)"),
    ("prometheus_client/", "metrics (prometheus_client)"),
    ("granian/", SERVER),
    ("uvloop/", SERVER),
    ("/asyncio/", SERVER),
    ("core_app/", "the case service (core_app)"),
)
OTHER = "other (standard library, other packages)"
# Python functions whose time is the server's native code they call: the outermost middleware's
# `send` is the server's own (granian writes the response there, holding the interpreter).
SERVERS_CALLS = (("starlette/middleware/errors.py", "._send"),)


def package_of(file: str, func: str = "") -> str:
    if any(marker in file and func.endswith(name) for marker, name in SERVERS_CALLS):
        return SERVER
    for marker, name in PACKAGES:
        if marker in file:
            return name
    return OTHER


def samples(raw: str) -> Iterator[tuple[list[re.Match[str]], int]]:
    """Each stack of py-spy's raw output as its Python frames, outermost first, and its count. A stack
    with no Python frame (a process that only supervises its workers, in native code) is left out."""
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [m for m in map(FRAME.match, stack.split(";")) if m]
        if frames:
            yield frames, int(n)


def shares(raw: str) -> tuple[dict[str, float], int]:
    """Each package's share of the samples (the leaf frame's package) and the number of samples."""
    counts: Counter[str] = Counter()
    for frames, n in samples(raw):
        counts[package_of(frames[-1]["file"], frames[-1]["func"])] += n
    total = sum(counts.values())
    return ({k: v / total for k, v in counts.most_common()} if total else {}), total


def inclusive(raw: str, under: str = "core_app/", top: int = 8) -> list[tuple[str, float]]:
    """The functions of `under` with the largest share of samples in which they are on the stack."""
    counts: Counter[str] = Counter()
    total = 0
    for frames, n in samples(raw):
        total += n
        for name in {f"{m['file'].split(under, 1)[1]}:{m['func']}" for m in frames if under in m["file"]}:
            counts[name] += n
    return [(name, c / total) for name, c in counts.most_common(top)] if total else []


class Profiler:
    """py-spy recording a process and its children (the server's workers) until stopped."""

    def __init__(self, pid: int, out: Path, rate: int = 250) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> str | None:
        """Why it cannot run here, or None."""
        if not py_spy():
            return "py-spy is not installed (the load extra has it: make deps)"
        return None

    def __enter__(self) -> Profiler:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        # --nonblocking: sampling does not pause the workers, so it does not slow what is measured.
        # --gil: only the thread holding the interpreter, i.e. Python (and the C it calls without
        # releasing it) running; a worker waiting for the database or the socket, or runnable but
        # not given a core on a busy machine, is not the app's CPU and is not counted.
        self.proc = subprocess.Popen([py_spy(), "record", "--pid", str(self.pid), "--subprocesses", "--nonblocking",
                                      "--gil", "--full-filenames",
                                      "--rate", str(self.rate), "--format", "raw", "--output", str(self.out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(2)  # py-spy writes what it sampled on SIGINT
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @staticmethod
    def stacks(out: Path) -> str:
        """What a recording wrote (py-spy's raw format), or nothing if it wrote nothing."""
        return out.read_text(errors="replace") if out.exists() else ""


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def label(endpoint: str) -> str:
    """An endpoint's short name: what comes before its method and path ("case file", "inbox")."""
    return endpoint.split("  ")[0].strip()


def markdown(profiles: dict[str, str]) -> str:
    """One table: each endpoint's samples by package, then each endpoint's heaviest case-service functions."""
    tables = {name: shares(raw) for name, raw in profiles.items()}
    packages = [p for _, p in PACKAGES] + [OTHER]
    packages = [p for i, p in enumerate(packages) if p not in packages[:i]
                and any(p in s for s, _ in tables.values())]
    names = [n for n in profiles if tables[n][1]]
    lines = ["Where the app's CPU goes (py-spy, every worker; share of samples by the package of the code running)",
             "", "| package | " + " | ".join(label(n) for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    for p in packages:
        lines.append(f"| {p} | " + " | ".join(f"{100 * tables[n][0].get(p, 0.0):.0f} %" for n in names) + " |")
    lines.append("| samples | " + " | ".join(f"{tables[n][1]:,}" for n in names) + " |")
    for n in names:
        heavy = inclusive(profiles[n])
        if heavy:
            lines += ["", f"{label(n)}: the case service's functions on the stack, share of samples: "
                      + ", ".join(f"{f} {100 * s:.0f} %" for f, s in heavy)]
    return "\n".join(lines)
