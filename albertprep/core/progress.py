"""Progress of a job whose work happens elsewhere (Beam's worker processes).

The job's own process polls what the tasks leave behind (finished output
files, markers) and shows it: a bar (redrawn in place) with rate and ETA when stderr is a
terminal, a plain log line every `every` seconds when it is not (a log
file, a CI job). Nothing here knows Beam: the caller says how to count what is done.

    with Progress("extract", total=input_bytes, unit="B", done=lambda: bytes_of_finished_tasks()):
        pipeline.run().wait_until_finish()
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

_BAR_WIDTH = 30


def _size(value: float, unit: str) -> str:
    if unit != "B":
        return f"{value:,.0f} {unit}"
    for scale, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if value >= scale:
            return f"{value / scale:.1f} {name}"
    return f"{value:.0f} B"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """Shows `done()` against `total` while the block runs; polls every `interval` seconds."""

    def __init__(self, label: str, total: int, unit: str, done: Callable[[], int], every: float = 30.0,
                 stream: TextIO | None = None, interval: float = 0.5, log: Callable[[str], None] | None = None):
        self._label, self._total, self._unit, self._done = label, max(total, 1), unit, done
        self._every, self._interval = every, interval
        self._stream = stream or sys.stderr
        # off a terminal the lines are log lines: timestamped, and told apart from errors as the rest of the log
        self._log = log or logging.getLogger("albertprep.progress").info
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._terminal = False
        self._started = 0.0

    def line(self, done: int) -> str:
        """The plain line: share done, amount, rate and ETA."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = done / elapsed
        eta = f", ETA {_duration((self._total - done) / rate)}" if 0 < done < self._total else ""
        return (f"{self._label}: {100 * done / self._total:.0f}% ({_size(done, self._unit)} of "
                f"{_size(self._total, self._unit)}), {_size(rate, self._unit)}/s, {_duration(elapsed)} elapsed{eta}")

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        self._terminal = self._stream.isatty()
        if self._terminal:
            self._draw(0)
        self._thread = threading.Thread(target=self._poll, name=f"progress-{self._label}", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> int:
        try:
            return min(int(self._done()), self._total)
        except OSError:  # a file listed as it was renamed: the next poll counts it
            return -1

    def _poll(self) -> None:
        last_line = time.monotonic()
        while not self._stop.wait(self._interval):
            done = self._read()
            if done < 0:
                continue
            if self._terminal:
                self._draw(done)
            elif time.monotonic() - last_line >= self._every:
                last_line = time.monotonic()
                self._log(self.line(done))

    def __exit__(self, exc_type, *rest: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        # a block that ended without an error did all its work (its markers may be cleaned up already)
        done = self._total if exc_type is None else self._read()
        if self._terminal:
            if done >= 0:
                self._draw(done)
            self._stream.write("\n")
            self._stream.flush()
        elif exc_type is None and done >= 0:
            self._log(self.line(done))

    def _draw(self, done: int) -> None:
        """One line, redrawn in place: `prepare:  45%|#####      | 1.2 MB/2.7 MB [0:03<0:04, 400.0 kB/s]`."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = done / elapsed
        eta = _duration((self._total - done) / rate) if rate > 0 else "?"
        filled = int(_BAR_WIDTH * done / self._total)
        bar = "#" * filled + " " * (_BAR_WIDTH - filled)
        self._stream.write(f"\r{self._label}: {100 * done / self._total:3.0f}%|{bar}| {_size(done, self._unit)}/"
                           f"{_size(self._total, self._unit)} [{_duration(elapsed)}<{eta}, "
                           f"{_size(rate, self._unit)}/s]\x1b[K")
        self._stream.flush()
