"""Resuming the loader: JSON and orbax states, refusals, and SIGKILL at random points.

This file is also the consuming process the SIGKILL test starts:

    python tests/loaders/test_loader_resume.py DATA CONFIG_JSON WORKDIR SAVE_EVERY DELAY

It appends "batch-index sha256" for every batch to WORKDIR/hashes.txt and,
every SAVE_EVERY batches, replaces WORKDIR/state.json atomically; started
again, it resumes from that state. Grain's workers start with spawn and
import this file again, hence the main guard and the light imports at the
top (conftest, which imports Beam, only inside the fixtures).
"""

import dataclasses
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

from albertprep.loaders import (
    AlbertLoader,
    IncompatibleStateError,
    LoaderConfig,
    PreparedDataset,
    batch_digest,
    read_state_file,
    write_state_file,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHM_PREFIX = "ALBERTPREP_TEST_SHM_PREFIX"

if os.environ.get(SHM_PREFIX):
    # The consumer and its Grain workers (spawned, they import this file
    # again) name their shared memory with the test's prefix, so the test can
    # remove exactly what a kill leaves behind (a kill between a segment's
    # creation and its registration with the resource tracker leaks it).
    from multiprocessing import shared_memory

    shared_memory._SHM_NAME_PREFIX = os.environ[SHM_PREFIX]
    shared_memory._SHM_SAFE_NAME_LENGTH = len(os.environ[SHM_PREFIX]) + 16


def consume(data: str, config: dict, workdir: pathlib.Path, save_every: int, delay: float) -> None:
    """The child: consume all batches, recording hashes and saving states."""
    state_path = workdir / "state.json"
    loader = AlbertLoader(PreparedDataset.open(data, verify_checksums=False), LoaderConfig(**config))
    with iter(loader) as batches, open(workdir / "hashes.txt", "a") as hashes:
        if state_path.exists():
            batches.set_state(read_state_file(state_path))
        with open(workdir / "starts.txt", "a") as starts:
            starts.write(f"{batches.batches}\n")
        for batch in batches:
            hashes.write(f"{batches.batches - 1} {batch_digest(batch)}\n")
            hashes.flush()
            if batches.batches % save_every == 0:
                write_state_file(state_path, batches.get_state())
            time.sleep(delay)  # a training step


def prepare(tmp_path_factory, name, *extra):
    from conftest import ALBERT_MODEL, BOOKS

    from albertprep import cli

    output = tmp_path_factory.mktemp(name) / "prepared"
    assert cli.main(["prepare", str(BOOKS / "blake-poems.txt"), "--output", str(output), "--spm-model",
                     str(ALBERT_MODEL), "--max-seq-length", "128",
                     "--eval-fraction", "0", *extra]) == 0
    return output


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return prepare(tmp_path_factory, "loader-resume", "--dupe-factor", "2", "--num-shards", "3")


@pytest.fixture(scope="module")
def dataset(data):
    return PreparedDataset.open(data)


@pytest.mark.parametrize("worker_count", [0, 2])
def test_a_json_state_resumes_the_same_batches(dataset, worker_count):
    config = LoaderConfig(batch_size=4, seed=3, num_epochs=2, dynamic_masking=True, worker_count=worker_count)
    loader = AlbertLoader(dataset, config)
    states = {}
    with iter(loader) as batches:
        digests = []
        for batch in batches:
            digests.append(batch_digest(batch))
            if len(digests) in (5, 40):
                states[len(digests)] = batches.get_state()  # taking it changes nothing: digests is the reference
    assert len(digests) == loader.num_batches
    with iter(AlbertLoader(dataset, config)) as resumed:
        resumed.set_state(states[40])
        assert resumed.batches == 40
        assert [batch_digest(b) for b in resumed] == digests[40:]
        resumed.set_state(states[5])  # back to an earlier point, on the same iterator
        assert [batch_digest(next(resumed)) for _ in range(3)] == digests[5:8]


def test_orbax_saves_and_restores_the_state(dataset, tmp_path):
    import grain.python as grain
    import orbax.checkpoint as ocp

    config = LoaderConfig(batch_size=4, seed=3, num_epochs=None)
    with iter(AlbertLoader(dataset, config)) as batches:
        for _ in range(17):
            next(batches)
        with ocp.CheckpointManager(tmp_path / "checkpoints") as manager:
            manager.save(17, args=ocp.args.Composite(data=grain.PyGrainCheckpointSave(batches)))
            manager.wait_until_finished()
        expected = [batch_digest(next(batches)) for _ in range(50)]
    saved = json.loads((tmp_path / "checkpoints" / "17" / "data" / "process_0-of-1.json").read_text())
    assert saved["format"] == "albertprep.loader_state" and saved["batches"] == 17
    with iter(AlbertLoader(dataset, config)) as restored:
        with ocp.CheckpointManager(tmp_path / "checkpoints") as manager:
            manager.restore(17, args=ocp.args.Composite(data=grain.PyGrainCheckpointRestore(restored)))
        assert restored.batches == 17
        assert [batch_digest(next(restored)) for _ in range(50)] == expected
    other = AlbertLoader(dataset, LoaderConfig(batch_size=8, seed=3, num_epochs=None))
    with iter(other) as refused, ocp.CheckpointManager(tmp_path / "checkpoints") as manager:
        with pytest.raises(IncompatibleStateError, match="batch size: 4 in the state, 8 now"):
            manager.restore(17, args=ocp.args.Composite(data=grain.PyGrainCheckpointRestore(refused)))


@pytest.mark.parametrize("change, message", [
    ("other_shards", "shard list"),
    (dict(batch_size=8), "batch size: 4 in the state, 8 now"),
    (dict(process_index=0, process_count=2), "process count: 1 in the state, 2 now"),
    (dict(worker_count=2), "worker count: 0 in the state, 2 now"),
    (dict(seed=4), "seed: 3 in the state, 4 now"),
    (dict(dynamic_masking=True), "dynamic masking: false in the state, true now"),
])
def test_an_incompatible_state_is_refused(dataset, tmp_path_factory, change, message):
    config = LoaderConfig(batch_size=4, seed=3, num_epochs=None)
    with iter(AlbertLoader(dataset, config)) as batches:
        next(batches)
        state = batches.get_state()
    if change == "other_shards":
        other = PreparedDataset.open(prepare(tmp_path_factory, "loader-other", "--dupe-factor", "1"))
        loader = AlbertLoader(other, config)
    else:
        loader = AlbertLoader(dataset, dataclasses.replace(config, **change))
    iterator = iter(loader)  # workers start on the first batch, not here
    with pytest.raises(IncompatibleStateError, match=message) as error:
        iterator.set_state(state)
    assert "would not resume the same batches" in str(error.value)
    iterator.close()


def test_a_bare_grain_state_is_refused(dataset):
    with iter(AlbertLoader(dataset, LoaderConfig(batch_size=4))) as batches:
        next(batches)
        grain_state = json.loads(batches.get_state())["grain"]
        with pytest.raises(IncompatibleStateError, match="not an albertprep loader state"):
            batches.set_state(json.dumps(grain_state).encode())


def descendants(pid: int) -> list[tuple[int, bytes]]:
    """(pid, command line) of every process below pid, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                parent = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, pending = [], list(children.get(pid, []))
    while pending:
        process = pending.pop()
        try:
            with open(f"/proc/{process}/cmdline", "rb") as f:
                found.append((process, f.read()))
        except OSError:
            continue
        pending.extend(children.get(process, []))
    return found


def kill_consumer(child: subprocess.Popen) -> list[int]:
    """SIGKILL the consumer and its Grain workers, as a preemption would.

    Python's resource tracker, the one process spared, outlives them and
    unlinks the shared memory and semaphores they held (killed with them, it
    would leave them in /dev/shm). Returns the trackers' pids."""
    below = descendants(child.pid)
    trackers = [pid for pid, command in below if b"resource_tracker" in command]
    for pid in [child.pid] + [pid for pid, _ in below if pid not in trackers]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    child.wait()
    return trackers


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def wait_for_exit(pids: list[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for pid in pids:
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def read_hashes(path: pathlib.Path) -> list[tuple[int, str]]:
    """Complete lines only: a kill may cut the last one."""
    lines = path.read_text().split("\n")[:-1] if path.exists() else []
    return [(int(index), digest) for index, digest in (line.split() for line in lines)]


# with workers, 40 s: slow; a JSON state resuming with workers stays in the default suite
@pytest.mark.parametrize("worker_count", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_killed_at_random_points_resumes_identically(data, dataset, tmp_path, worker_count):
    """SIGKILL (the consumer and its workers) at seeded random points, restart
    from the last saved state, until done; every batch each run produced must
    be the uninterrupted run's batch of that index."""
    config = dict(batch_size=4, seed=3, num_epochs=3, dynamic_masking=True, worker_count=worker_count)
    loader = AlbertLoader(dataset, LoaderConfig(**config))
    with iter(loader) as batches:
        reference = [batch_digest(b) for b in batches]
    assert len(reference) == loader.num_batches > 90
    rng = random.Random(20240611 + worker_count)
    save_every, delay, kills = 4, 0.01, 3
    command = [sys.executable, __file__, str(data), json.dumps(config), str(tmp_path), str(save_every), str(delay)]
    prefix = f"/psm_loadertest{os.getpid()}x{worker_count}_"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               **{SHM_PREFIX: prefix})
    trackers = []
    for run in range(kills + 1):
        child = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)
        try:
            if run == kills:
                _, stderr = child.communicate(timeout=120)
                assert child.returncode == 0, stderr.decode()
                break
            done = len(read_hashes(tmp_path / "hashes.txt"))
            target = done + rng.randint(2, 20)
            while len(read_hashes(tmp_path / "hashes.txt")) < target:
                assert child.poll() is None, f"the consumer ended before it was killed: {child.stderr.read().decode()}"
                time.sleep(0.002)
            time.sleep(rng.uniform(0, delay))  # anywhere inside a step
            trackers += kill_consumer(child)
        finally:
            if child.poll() is None:
                trackers += kill_consumer(child)
    wait_for_exit(trackers)  # they unlink the shared memory the killed processes left
    for leftover in pathlib.Path("/dev/shm").glob(prefix[1:] + "*"):
        leftover.unlink(missing_ok=True)
    produced = read_hashes(tmp_path / "hashes.txt")
    starts = [int(line) for line in (tmp_path / "starts.txt").read_text().split()]
    assert len(starts) == kills + 1 and starts[0] == 0 and all(s > 0 for s in starts[1:])  # really resumed
    assert {index for index, _ in produced} == set(range(len(reference)))
    mismatches = [(index, digest) for index, digest in produced if reference[index] != digest]
    assert not mismatches
    assert len(produced) < len(reference) + kills * save_every  # at most one saving period redone per kill


if __name__ == "__main__":
    consume(sys.argv[1], json.loads(sys.argv[2]), pathlib.Path(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
