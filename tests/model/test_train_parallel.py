"""Data parallel and FSDP over several devices give the single device's losses."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).with_name("multidevice_check.py")


def _run(mode: str) -> dict:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, str(SCRIPT), mode], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def single():
    return _run("single")


@pytest.mark.parametrize("mode", ["data", "fsdp"])
def test_two_devices_match_one(single, mode):
    run = _run(mode)
    assert single["devices"] == 1 and run["devices"] == 2
    assert run["losses"][-1] < run["losses"][0]
    for ours, reference in zip(run["losses"], single["losses"]):
        assert ours == pytest.approx(reference, rel=1e-5)  # the same sums, in another order
    # replicated parameters have one distinct shard; FSDP splits the kernel in two
    assert run["kernel_shards"] == (2 if mode == "fsdp" else 1)


def test_the_mesh_keeps_each_process_devices_together_in_process_order():
    """What lets process p's rows be the p-th block of a global batch; a
    device list in another order (as a topology-aware layout might give) is
    regrouped, each process's own order kept."""
    from collections import namedtuple

    from albertprep.model.train import in_process_order

    Device = namedtuple("Device", "id process_index")
    interleaved = [Device(0, 0), Device(1, 1), Device(2, 0), Device(3, 1), Device(4, 2)]
    assert [d.id for d in in_process_order(interleaved)] == [0, 2, 1, 3, 4]
    grouped = [Device(5, 0), Device(4, 0), Device(7, 1), Device(6, 1)]
    assert in_process_order(grouped) == grouped
