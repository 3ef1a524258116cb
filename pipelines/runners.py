"""Which Beam runner a job uses, and the options that make it behave.

The embedded default is the FnApiRunner, named explicitly: Beam's
DirectRunner would first try to download the Prism binary and, offline,
fall back with only a warning. `--workers N` runs it with N worker
processes. Any other runner comes from ordinary Beam pipeline options
(`--runner=...` and that runner's own flags), passed through unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import importlib
import os
from collections.abc import Callable

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, SetupOptions, StandardOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.transforms.environments import SubprocessSDKEnvironment

from albertprep.core import malloc
from albertprep.core.errors import UserError
from albertprep.pipelines import drop_notice, warm

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
_SETUP_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")


# FnApiRunner warns that N workers need a multi-process running mode whenever
# it is given its workers' environment itself, as make_pipeline does; the N
# warm processes are that multi-process mode.
drop_notice("apache_beam.runners.portability.fn_api_runner.fn_runner", "If direct_num_workers is not equal to 1")


def _has_flag(beam_args: list[str], name: str) -> bool:
    return any(arg == name or arg.startswith(name + "=") for arg in beam_args)


def _flag_value(beam_args: list[str], name: str) -> str | None:
    for index, arg in enumerate(beam_args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and index + 1 < len(beam_args):
            return beam_args[index + 1]
    return None


# Dask partitions per worker thread of the cluster: enough for the scheduler
# to even out tasks of unequal weight, few enough that the shuffles of the
# job's GroupByKeys stay small (see `dask_partitions`).
PARTITIONS_PER_THREAD = 4


def dask_partitions(beam_args: list[str], parallel_tasks: int) -> int:
    """How many partitions the DaskRunner cuts a job's Create into, when
    the command line does not say (--dask_npartitions or
    --dask_partition_size): one per task, at most PARTITIONS_PER_THREAD per
    worker thread of the cluster.

    The DaskRunner puts all of a Create in one partition (one worker) unless
    told otherwise, and every partition is carried through the whole
    pipeline: a GroupByKey is a Dask shuffle across all of them, whose task
    count grows faster than the partitions do. One partition per task gave
    7,324 Dask tasks for one prepare of 24 MB (64 tasks) on 2 workers, and
    the scheduling cost more than the work; 8 partitions gave 537 tasks and
    half the wall time. The threads are asked of the cluster at
    --dask_client_address (a cluster that grows later keeps the partitions
    it started with); without one, the DaskRunner starts a local cluster of
    one worker per core."""
    address = _flag_value(beam_args, "--dask_client_address")
    threads = os.cpu_count() or 1
    if address:
        import distributed

        try:
            with distributed.Client(address, set_as_default=False, timeout=_DASK_CONNECT_SECONDS) as client:
                threads = max(1, sum(client.nthreads().values()))
        except (OSError, TimeoutError) as error:
            raise DaskUnreachable(f"--dask_client_address {address}: no Dask scheduler answered within "
                                  f"{_DASK_CONNECT_SECONDS:.0f} s ({type(error).__name__})") from error
    return max(1, min(parallel_tasks, PARTITIONS_PER_THREAD * threads))


_DASK_CONNECT_SECONDS = 20.0


class DaskUnreachable(UserError):
    """--dask_client_address names no scheduler that answers."""


def unknown_options(beam_args: list[str]) -> list[str]:
    """The flags in `beam_args` that no Beam pipeline option takes. Beam
    would drop them with a warning and run on (`--dupe-facotr 1` ran with
    the default dupe factor), so the CLI refuses them instead. A runner's
    own options count once its module is imported, as Beam does when it
    makes the runner."""
    runner = PipelineOptions(beam_args).view_as(StandardOptions).runner or ""
    if "." in runner:
        with contextlib.suppress(ImportError):
            importlib.import_module(runner.rsplit(".", 1)[0])
    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False, conflict_handler="resolve")
    seen = set()
    for cls in PipelineOptions.__subclasses__():
        if str(cls) not in seen:
            seen.add(str(cls))
            cls._add_argparse_args(parser)  # as PipelineOptions.get_all_options does
    _, unknown = parser.parse_known_args(beam_args)
    return [arg.split("=", 1)[0] for arg in unknown if arg.startswith("-")]


class StageFn(beam.DoFn):
    """The base of every stage's DoFns. A worker whose environment fixes
    glibc's trim threshold gets the allocator setting of albertprep/core/malloc.py:
    Dask's nanny starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which
    turns glibc's adaptive mmap threshold off, so every NumPy array over
    128 kB was mapped, faulted in and unmapped again; the same NumPy loop ran
    at half its speed in a Dask worker (1.4 M page faults against 1 k).
    Elsewhere glibc's own adaptive threshold is left as it is (the instance
    stage sets the allocator itself, for its batch arrays)."""

    def setup(self) -> None:
        if "MALLOC_TRIM_THRESHOLD_" in os.environ:
            malloc.keep_large_blocks()


class Distribute(beam.PTransform):
    """A job's pieces of work (ranges, tasks), as (key, [pieces]) elements
    spread over the runner's workers. Every stage starts with one.

    On the local runner (and any but Dask): one element per piece, in the
    order given, through a GroupByKey; the FnApiRunner deals the groups to
    its workers round-robin in arrival order, so a largest-first order
    balances them. On the DaskRunner: the pieces packed into as many bins of
    near-equal weight as the job has partitions (largest first, each into
    the lightest bin), one bin an element and so one a partition, with no
    GroupByKey: its shuffle hashed the pieces into partitions of unequal
    work (9.8 s against 4.0 s of prepare's on 0.25 GB), and the job waited
    on the heaviest. A DoFn reads only the pieces, never the key, so the
    output is the same either way."""

    def __init__(self, pieces: list, weight: Callable[[object], int]) -> None:
        super().__init__()
        self._pieces, self._weight = pieces, weight

    def expand(self, pbegin):
        options = pbegin.pipeline.options
        runner = options.view_as(StandardOptions).runner or ""
        partitions = dask_npartitions_of(options)
        if "DaskRunner" in runner and partitions:
            bins = balanced_bins(self._pieces, self._weight, int(partitions))
            return pbegin | "Create" >> beam.Create(list(enumerate(bins)), reshuffle=False)
        return (pbegin
                | "Create" >> beam.Create([(i, piece) for i, piece in enumerate(self._pieces)], reshuffle=False)
                | "Distribute" >> beam.GroupByKey())


def dask_npartitions_of(options: PipelineOptions) -> int | None:
    """The --dask_npartitions a pipeline was given. Its name in the options
    depends on whether the DaskRunner's module was imported first: its
    DaskOptions store it as `npartitions`, and until then it is an unknown
    option, `dask_npartitions`. Reading only the second made every CLI run
    (which imports the runner to check its flags) skip the bins and hash
    the tasks into partitions: at 2 GB one Dask worker sat idle 29 s of
    prepare's 166 s of instances."""
    values = options.get_all_options(retain_unknown_options=True)
    value = values.get("npartitions") or values.get("dask_npartitions")
    return int(value) if value else None


def heaviest_first(pieces: list, weight: Callable[[object], int]) -> list:
    """`pieces` heaviest first, ties in the given order: the order the local
    runner balances its workers by (`Distribute`), and the order bins are
    filled in (`balanced_bins`)."""
    return sorted(pieces, key=lambda piece: -weight(piece))  # stable: ties keep their order


def balanced_bins(pieces: list, weight: Callable[[object], int], count: int) -> list[list]:
    """`pieces` in at most `count` bins of near-equal total weight: each
    piece, heaviest first (ties in the given order), into the lightest bin
    so far (ties: the first). No bin is empty."""
    loads = [(0, b) for b in range(max(1, min(count, len(pieces))))]
    bins: list[list] = [[] for _ in loads]
    heapq.heapify(loads)
    for piece in heaviest_first(pieces, weight):
        load, b = heapq.heappop(loads)
        bins[b].append(piece)
        heapq.heappush(loads, (load + weight(piece), b))
    return [b for b in bins if b]


def make_pipeline(beam_args: list[str], workers: int = 1, parallel_tasks: int = 1) -> beam.Pipeline:
    """A pipeline on the runner `beam_args` name, else the local FnApiRunner.

    `parallel_tasks` is how many independent pieces of work the job has;
    on the DaskRunner it sets the partitions (`dask_partitions`).
    """
    beam_args = list(beam_args)
    runner = PipelineOptions(beam_args).view_as(StandardOptions).runner  # --runner=X or --runner X
    if runner is None:
        warm.quick_bundle_ends()  # the in-process worker's bundles (the warm workers set it themselves)
        options = PipelineOptions(beam_args)
        options.view_as(DirectOptions).direct_num_workers = workers
        if workers == 1:
            return beam.Pipeline(runner=FnApiRunner(), options=options)
        # N worker processes, as Beam's multi_processing mode starts them, but
        # forked from warm.py's zygote: ready at once and stopped at once.
        environment = SubprocessSDKEnvironment.from_command_string(warm.pool().command())
        return beam.Pipeline(runner=FnApiRunner(default_environment=environment), options=options)
    if "DaskRunner" in runner and not (
        _has_flag(beam_args, "--dask_npartitions") or _has_flag(beam_args, "--dask_partition_size")
    ):
        beam_args.append(f"--dask_npartitions={dask_partitions(beam_args, parallel_tasks)}")
    options = PipelineOptions(beam_args)
    remote = any(name in runner for name in ("Dataflow", "Flink", "Spark", "Portable"))
    setup = options.view_as(SetupOptions)
    if remote and not setup.setup_file and os.path.exists(_SETUP_PY):
        setup.setup_file = _SETUP_PY  # ship this project to the remote workers
    return beam.Pipeline(options=options)
