"""Whose code the app's CPU went to (loadtests/profile_app.py, `make bench-app BENCH_ARGS=--profile`):
py-spy's samples of a real process, each given to the package of the code that was running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from loadtests import profile_app

RAW = "\n".join([
    # A request's samples: the route's own code, the driver under it, the framework around it.
    'process 7:"granian";run (granian/server.py:10);__call__ (starlette/applications.py:20);'
    'case_file (core_app/api/routes/cases.py:64);execute (psycopg/cursor_async.py:97) 6',
    'process 7:"granian";run (granian/server.py:10);__call__ (starlette/applications.py:20);'
    'case_file (core_app/api/routes/cases.py:64) 3',
    'process 7:"granian";run (granian/server.py:10);__call__ (starlette/applications.py:20) 1',
    # The response written: the outermost middleware's send is the server's native write.
    'process 7:"granian";run (granian/server.py:10);__call__ (starlette/middleware/errors.py:160);'
    'ServerErrorMiddleware.__call__.<locals>._send (starlette/middleware/errors.py:161) 2',
    # The server's supervising process, in native code: no Python frame, not the workers' CPU.
    'process 6:"granian" 40',
    "a line that is not a stack",
])


def test_each_sample_goes_to_the_package_of_the_code_running_and_callers_are_counted_inclusively() -> None:
    share, samples = profile_app.shares(RAW)
    assert samples == 12
    assert share == {"driver (psycopg, its pool)": 0.5, "the case service (core_app)": 0.25,
                     "server and event loop (granian, uvloop, asyncio)": 2 / 12,
                     "framework (FastAPI, Starlette)": 1 / 12}
    assert profile_app.inclusive(RAW) == [("api/routes/cases.py:case_file", 0.75)]
    text = profile_app.markdown({"case file   GET /api/cases/{code}": RAW, "trivial     GET /livez": ""})
    assert "| package | case file |" in text and "| driver (psycopg, its pool) | 50 % |" in text
    assert "case file: the case service's functions on the stack, share of samples: api/routes/cases.py:case_file 75 %" \
        in text


def test_py_spy_samples_the_workers_of_a_server_it_was_given_the_parent_of(tmp_path: Path) -> None:
    assert profile_app.Profiler.available() is None  # the lock's load extra installs py-spy
    # A parent that starts a worker burning CPU in a file of a folder named core_app, as granian starts
    # the app's workers.
    package = tmp_path / "core_app"
    package.mkdir()
    (package / "busy.py").write_text("import time\n\ndef work():\n    t = time.time()\n    while time.time() - t < 20:\n"
                                     "        sum(range(500))\n\nwork()\n")
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; "
                               f"subprocess.run([sys.executable, {str(package / 'busy.py')!r}])"],
                              start_new_session=True)
    try:
        time.sleep(0.5)
        out = tmp_path / "profile" / "busy.txt"
        with profile_app.Profiler(parent.pid, out, rate=100):
            time.sleep(2)
        share, samples = profile_app.shares(profile_app.Profiler.stacks(out))
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
    assert samples > 50
    assert share["the case service (core_app)"] > 0.9
