"""The model benchmark runs as a script (a CPU smoke run: the figures mean nothing here)."""

import subprocess
import sys

from conftest import ROOT


def test_the_model_benchmark_runs_the_pretrain_step():
    result = subprocess.run([sys.executable, "benchmarks/model.py", "--configs", "tiny", "--seq-lens", "32",
                             "--batch", "4", "--steps", "1", "--no-torch"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    row = [line.split() for line in result.stdout.splitlines() if line.strip().startswith("tiny")]
    assert len(row) == 1 and row[0][:3] == ["tiny", "32", "flax/xla"] and float(row[0][3]) > 0
