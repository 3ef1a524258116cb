"""Whole-process measurement shared by the benchmarks: wall time, CPU and peak RSS from wait4().

Linux keeps a process's peak RSS across exec, and a child starts with its
parent's pages: a command started straight from a benchmark that has
imported Beam or read a corpus would report the benchmark's memory as its
own. So each command is started by a fresh, small launcher (this file run
as a script), which forks it, waits for it and writes its figures to a
file: the peak is the command's own (the largest single process, its
worker processes included).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable


def measure(command: list[str], cwd: str | None = None,
            watch: Callable[[int], None] | None = None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of a command and the children it waits for.
    `watch(pid)`, if given, is called every 50 ms while it runs, with the
    launcher's pid (the command is its child)."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as figures, tempfile.TemporaryFile() as stderr:
        # its own process group, so that a benchmark stopped midway stops the command's whole tree too
        process = subprocess.Popen([sys.executable, os.path.abspath(__file__), figures.name, *command],
                                   stdout=subprocess.DEVNULL, stderr=stderr, cwd=cwd, start_new_session=True)
        try:
            while watch is not None and process.poll() is None:
                watch(process.pid)
                time.sleep(0.05)
            code = process.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raise
        if code != 0:
            stderr.seek(0)
            raise SystemExit(f"{command[:4]} failed:\n{stderr.read().decode(errors='replace')[-3000:]}")
        result = json.loads(figures.read())
    return result["wall"], result["cpu"], result["rss_mb"]


def compile_project() -> None:
    """Byte-compile this project's modules, as `pip install` does for every
    installed package (wikiextractor's included). A command measured from
    the source tree where PYTHONDONTWRITEBYTECODE is set (this project's
    development machine sets it) would otherwise compile our 7,000 lines
    again in every process it starts: 0.08 CPU-s each, measured."""
    import compileall

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for package in ("albertprep", "pipelines", "loaders", "model"):
        compileall.compile_dir(os.path.join(root, package), quiet=1)


def _launch(figures: str, command: list[str]) -> int:
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    with open(figures, "w") as f:
        json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}, f)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(_launch(sys.argv[1], sys.argv[2:]))
