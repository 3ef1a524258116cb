"""Two JAX processes on this machine, as two hosts would run: `pretrain --distributed`.

Each process has one CPU device and reads its own rows of every global
batch; gloo carries the collectives. The run must equal, bit for bit, one
process driving two devices, and a resumption of it must equal it too. The
tiny config trains with the SOP classifier's dropout on, whose masks are
drawn per row of the global batch, so the rows must be in the same order.
"""

import json
import os
import shutil
import socket
import subprocess

import jax
import numpy as np
import pytest
from conftest import TIMING, pretrain_command

from albertprep import cli
from albertprep.model.pretrain import read_metrics

STEPS = 12


def _command(data, workdir, *extra):
    return pretrain_command(data, workdir, *extra, steps=STEPS, eval_every=6)


def _environment(devices: int) -> dict:
    return os.environ | {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _two_processes(data, workdir, *extra):
    port = _free_port()
    logs = [open(f"{workdir}.process{i}.log", "w") for i in range(2)]
    processes = [subprocess.Popen(_command(data, workdir, "--distributed", "--coordinator", f"127.0.0.1:{port}",
                                           "--num-processes", "2", "--process-id", str(i), *extra),
                                  stdout=logs[i], stderr=subprocess.STDOUT, env=_environment(1))
                 for i in range(2)]
    try:
        codes = [process.wait(timeout=300) for process in processes]
    finally:  # one that died leaves the other waiting for it: never leave it behind
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for log in logs:
            log.close()
    failed = next((i for i, code in enumerate(codes) if code != 0), None)
    assert failed is None, f"process {failed}: " + open(f"{workdir}.process{failed}.log").read()[-3000:]


def _metrics(workdir):
    return [{k: v for k, v in m.items() if k not in TIMING} for m in read_metrics(str(workdir))]


@pytest.fixture(scope="module")
def two_hosts(pretrain_data, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hosts") / "run"
    _two_processes(pretrain_data, workdir)
    return workdir


@pytest.fixture(scope="module")
def one_host(pretrain_data, tmp_path_factory):
    """One process driving two devices."""
    workdir = tmp_path_factory.mktemp("host") / "run"
    result = subprocess.run(_command(pretrain_data, workdir), capture_output=True, text=True, timeout=300,
                            env=_environment(2))
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_two_processes_equal_one_process_with_two_devices(two_hosts, one_host):
    one = one_host
    metrics = _metrics(two_hosts)
    assert [m["step"] for m in metrics if m["split"] == "eval"] == [6, 12]
    assert len([m for m in metrics if m["split"] == "train"]) == STEPS
    assert metrics == _metrics(one)
    # one writer of the metrics; a loader state for each process in every checkpoint
    assert len((two_hosts / "metrics.jsonl").read_text().splitlines()) == STEPS + 2
    assert sorted(os.listdir(two_hosts / "checkpoints" / "12" / "data")) == [
        "commit_success.txt", "process_0-of-2.json", "process_1-of-2.json"]
    assert json.loads((two_hosts / "config.json").read_text())["model_config"]["hidden_size"] == 32


@pytest.mark.slow  # 30 s; the one-process resume tests stay in the default suite
def test_two_processes_resume_to_the_bit(pretrain_data, two_hosts, tmp_path):
    """As if both were killed after step 4's checkpoint: the resumed run logs
    steps 5 to 12 again, and they equal the uninterrupted run's."""
    resumed = tmp_path / "resumed"
    shutil.copytree(two_hosts, resumed)
    for step in ("8", "12"):
        shutil.rmtree(resumed / "checkpoints" / step)
    lines = (resumed / "metrics.jsonl").read_text().splitlines()
    (resumed / "metrics.jsonl").write_text("\n".join(lines[:4]) + "\n")  # steps 1-4
    _two_processes(pretrain_data, resumed, "--resume")
    assert _metrics(resumed) == _metrics(two_hosts)
    assert len((resumed / "metrics.jsonl").read_text().splitlines()) == STEPS + 2


def test_a_two_host_checkpoint_converts_in_one_process(two_hosts, one_host, tmp_path):
    """Restored onto one device whatever mesh saved it; the weights are the one-host run's."""
    from albertprep.model import convert

    for run in (two_hosts, one_host):
        assert cli.main(["convert", str(run), "--output", str(tmp_path / run.parent.name)]) == 0
    (two, _), (one, _) = (convert.load_pretrained(str(tmp_path / run.parent.name)) for run in (two_hosts, one_host))
    jax.tree_util.tree_map(np.testing.assert_array_equal, two, one)


@pytest.mark.slow
def test_fsdp_over_two_processes_equals_one_process_and_converts(pretrain_data, tmp_path):
    """Parameters and optimizer state sharded across the processes: the same
    metrics as FSDP over one process's two devices, and the checkpoint, saved
    in pieces by both processes, converts on one."""
    two, one = tmp_path / "two", tmp_path / "one"
    _two_processes(pretrain_data, two, "--fsdp")
    result = subprocess.run(_command(pretrain_data, one, "--fsdp"), capture_output=True, text=True, timeout=300,
                            env=_environment(2))
    assert result.returncode == 0, result.stderr[-3000:]
    assert _metrics(two) == _metrics(one)
    for run in (two, one):
        assert cli.main(["convert", str(run), "--output", str(tmp_path / f"{run.name}-model")]) == 0
    from albertprep.model import convert

    jax.tree_util.tree_map(np.testing.assert_array_equal, convert.load_pretrained(str(tmp_path / "two-model"))[0],
                           convert.load_pretrained(str(tmp_path / "one-model"))[0])
