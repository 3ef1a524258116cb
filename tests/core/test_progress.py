"""albertprep.core.progress, and the progress extract and prepare show."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import time

from conftest import ALBERT_MODEL, BOOKS, ROOT

from albertprep.core.progress import Progress


def test_a_plain_line_says_how_far_how_fast_and_how_long_to_go():
    done, lines = [0], []
    with Progress("extract", total=4_000_000, unit="B", done=lambda: done[0], every=0.05, stream=io.StringIO(),
                  interval=0.01, log=lines.append):
        for step in range(1, 5):
            done[0] = step * 1_000_000
            time.sleep(0.08)
    assert len(lines) >= 3 and lines[-1].startswith("extract: 100% (4.0 MB of 4.0 MB), ")
    assert "MB/s" in lines[-1] and "elapsed" in lines[-1] and "ETA" not in lines[-1]
    assert any("ETA" in line and "%" in line for line in lines[:-1])


def _extract_command(output) -> list[str]:
    return [sys.executable, "-m", "albertprep.cli", "extract", str(BOOKS), "--output", str(output), "--split-mb",
            "0.25", "--progress-seconds", "0.2"]


def test_extract_prints_progress_lines_when_not_on_a_terminal(tmp_path):
    result = subprocess.run(_extract_command(tmp_path / "out"), capture_output=True, text=True, cwd=ROOT,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.split(" INFO ", 1)[1] for line in result.stderr.splitlines() if " INFO extract: " in line
             and "% (" in line]  # log lines, timestamped
    assert lines and lines[-1].startswith("extract: 100% ("), result.stderr[-2000:]


def test_prepare_shows_a_bar_on_a_terminal(tmp_path):
    """stderr a pseudo-terminal: a bar redrawn in place, with its rate and ETA."""
    primary, secondary = pty.openpty()
    command = [sys.executable, "-m", "albertprep.cli", "prepare", str(BOOKS / "austen-emma.txt"), "--output",
               str(tmp_path / "prepared"), "--spm-model", str(ALBERT_MODEL), "--dupe-factor", "2",
               "--max-seq-length", "128"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the other end closed: the process ended
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(timeout=300) == 0
    text = seen.decode("utf-8", "replace")
    assert "prepare: 100%|" in text and "B/s]" in text and "\r" in text, text[-2000:]
