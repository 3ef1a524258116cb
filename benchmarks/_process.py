"""Whole-process measurement shared by the benchmarks: wall time, CPU and peak RSS from wait4()."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time


def measure(command: list[str], cwd: str | None = None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of a command and the children it waits
    for; the peak is that of the largest single process. Its stderr goes to a
    file, not a pipe: a chatty command would fill a pipe and stall."""
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            raise SystemExit(f"{command[:4]} failed:\n{stderr.read().decode(errors='replace')[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
