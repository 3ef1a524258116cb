"""The local runner's warm workers (pipelines/warm.py): Beam's own harness in
processes forked from one zygote, so `--workers N` pays one import, not N."""

from __future__ import annotations

import os
import pathlib
import resource
import subprocess
import sys
import textwrap

import apache_beam as beam
import pytest
from conftest import BOOKS

from albertprep import cli
from albertprep.pipelines import runners, warm

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("argv", "expected"), [
    (["extract", "in.xml", "--output", "o", "--workers", "2"], 2),
    (["prepare", "d", "--workers=3", "--output", "o"], 3),
    (["dedup", "d", "--output", "o"], 0),                       # one worker: the in-process runner
    (["extract", "in", "--workers", "1"], 0),
    (["extract", "in", "--workers", "2", "--runner", "DaskRunner"], 0),  # another runner's workers
    (["pretrain", "--workers", "2"], 0),                        # not a Beam job
    (["extract", "in", "--workers", "two"], 0),                 # the CLI will refuse it in one line
    ([], 0),
])
def test_workers_are_started_early_only_for_a_local_multi_worker_beam_job(argv, expected):
    assert warm.workers_requested(argv) == expected


def test_a_two_worker_pipeline_runs_in_workers_forked_from_the_zygote(tmp_path, monkeypatch):
    """Every element is processed once, in a process whose parent is the
    zygote; and each worker runs where the runner was, with its environment,
    though the zygote was started before either was set."""
    zygote = warm.pool()._zygote.pid
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALBERTPREP_WARM_PROBE", "set after the zygote started")
    out = tmp_path / "seen"

    def where(element):  # made here, so that it is pickled by value: a worker cannot import this test
        return element, os.getpid(), os.getppid(), os.getcwd(), os.environ.get("ALBERTPREP_WARM_PROBE")

    pipeline = runners.make_pipeline([], workers=2)
    (pipeline
     | beam.Create(range(40), reshuffle=False)
     | beam.Map(lambda x: (x % 8, x)) | beam.GroupByKey() | beam.FlatMap(lambda kv: kv[1])
     | beam.Map(where)
     | beam.Map(repr) | beam.io.WriteToText(str(out), shard_name_template=""))
    pipeline.run().wait_until_finish()
    rows = [eval(line) for line in out.read_text().splitlines()]  # noqa: S307 (our own repr)
    assert sorted(row[0] for row in rows) == list(range(40))
    assert {row[2] for row in rows} == {zygote}
    assert os.getpid() not in {row[1] for row in rows} and zygote not in {row[1] for row in rows}
    assert {row[3] for row in rows} == {str(tmp_path)}
    assert {row[4] for row in rows} == {"set after the zygote started"}


def test_the_workers_cpu_time_is_counted_in_the_commands_and_nothing_is_left_behind(tmp_path):
    """A caller measures a command's CPU by wait4 (benchmarks/_process.py):
    the forked workers' CPU must reach it, which needs the zygote to wait for
    them. Each worker burns a known amount of CPU; the command's children's
    time, less what the command itself used, must hold it. The zygote and
    its socket directory are gone when the command has ended."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent("""
        import os, resource, sys, time
        import apache_beam as beam
        from albertprep.pipelines import runners, warm

        def burn(x):
            end = time.thread_time() + 0.6
            while time.thread_time() < end:
                pass
            return x

        pipeline = runners.make_pipeline([], workers=2)
        (pipeline | beam.Create(range(4), reshuffle=False) | beam.Map(lambda x: (x, x))
         | beam.GroupByKey() | beam.Map(lambda kv: burn(kv[0])))
        pipeline.run().wait_until_finish()
        pool = warm.pool()
        print(pool._zygote.pid, os.path.dirname(pool.address),
              sum(resource.getrusage(resource.RUSAGE_SELF)[:2]))
    """))
    before = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    children = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]) - before
    zygote, directory, own = done.stdout.split()
    assert children - float(own) >= 4 * 0.6, (children, own)
    assert not os.path.exists(directory)
    assert not pathlib.Path(f"/proc/{zygote}").exists()


def test_the_albertprep_entry_point_runs_a_two_worker_job(tmp_path):
    """`python -m albertprep` forks the zygote from the command at its first
    pipeline, and its output is the same as one worker's."""
    chosen = [str(BOOKS / name) for name in ("austen-emma.txt", "austen-sense.txt", "chesterton-ball.txt")]
    outputs = {}
    for workers in (1, 2):
        output = tmp_path / f"w{workers}"
        done = subprocess.run([sys.executable, "-m", "albertprep", "extract", *chosen, "--output", str(output),
                               "--workers", str(workers)],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        assert done.stdout.strip().splitlines()[-1].startswith(f"{len(chosen)} documents from")  # flushed before exit
        outputs[workers] = [p.read_bytes() for p in sorted(output.glob("documents-*"))]
    assert len(outputs[1]) == 2 * len(chosen) and outputs[1] == outputs[2]  # a .jsonl and a .txt per book


@pytest.mark.parametrize(("other_thread", "forked"), [(False, True), (True, False)])
def test_the_zygote_is_forked_from_a_process_with_one_thread_else_started_anew(tmp_path, other_thread, forked):
    """A command with no thread but its main one (as `prestart` leaves it)
    forks its zygote, which then shares the command's command line and
    imports no Beam of its own; one running another thread (here a Python
    one; native ones count the same) must not fork, and starts the zygote
    as a new interpreter. The pipeline runs either way."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent("""
        import sys, threading, time
        from albertprep.pipelines import warm
        warm.prestart(["extract", "in", "--workers", "2"])
        if sys.argv[1] == "thread":
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        import apache_beam as beam
        from albertprep.pipelines import runners
        pipeline = runners.make_pipeline([], workers=2)
        (pipeline | beam.Create(range(6), reshuffle=False) | beam.Map(lambda x: (x % 2, x)) | beam.GroupByKey()
         | beam.Map(lambda kv: f"{kv[0]} {sorted(kv[1])}") | beam.io.WriteToText(sys.argv[2], shard_name_template=""))
        pipeline.run().wait_until_finish()
        with open(sys.argv[2]) as f:
            print(*sorted(f.read().splitlines()), sep="\\n")
        zygote = warm.pool()._zygote.pid
        with open(f"/proc/{zygote}/cmdline", "rb") as theirs, open("/proc/self/cmdline", "rb") as ours:
            print("forked" if theirs.read() == ours.read() else "started")
    """))
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    env.pop("OPENBLAS_NUM_THREADS", None)  # as a user's shell has it: prestart sets it
    done = subprocess.run([sys.executable, str(script), "thread" if other_thread else "none", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["0 [0, 2, 4]", "1 [1, 3, 5]", "forked" if forked else "started"]
    beam_imports = [line for line in done.stderr.splitlines() if line.rstrip().endswith("| apache_beam")]
    assert len(beam_imports) == (1 if forked else 2)


def test_the_entry_point_keeps_a_beam_commands_exit_code_and_last_line():
    """A Beam command leaves by os._exit (albertprep/launch.py): its exit code
    and its one line still come out."""
    missing = str(ROOT / "no-such-input.xml")
    done = subprocess.run([sys.executable, "-m", "albertprep", "extract", missing, "--output", "/tmp/unused",
                           "--workers", "2"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == cli.EXIT_NOT_STARTED
    assert done.stderr.strip().splitlines()[-1].startswith("albertprep extract:") and missing in done.stderr
    assert warm._BEAM_COMMANDS == cli.BEAM_COMMANDS  # warm keeps its own copy: it must not import the CLI


def test_a_local_jobs_processes_leave_out_what_none_of_its_stages_use(tmp_path):
    """The command and its warm workers import neither pyarrow, pymongo nor
    Beam's BigQuery IO (warm.leave_out_beam_extras: 42 MB of each process's
    RSS), and an extract neither SentencePiece nor ArrayRecord; the job runs
    as it does with them."""
    book = str(BOOKS / "austen-emma.txt")
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")  # every Python process started reports its imports
    done = subprocess.run([sys.executable, "-m", "albertprep", "extract", book, "--output", str(tmp_path / "out"),
                           "--workers", "2"], capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    # the zygote's imports are there too
    assert {"apache_beam", "apache_beam.runners.worker.sdk_worker_main", "mwparserfromhell"} <= imported
    # (an import that fails is reported too, so a module of each package stands for it)
    left_out = {"pyarrow.lib", "pymongo._version", "bson.objectid", "apache_beam.io.gcp.bigquery_tools",
                "sentencepiece._sentencepiece", "array_record.python.array_record_module"}
    assert not imported & left_out, imported & left_out
    assert (tmp_path / "out" / "documents-00000-of-00001.jsonl").stat().st_size > 500_000


def test_a_process_that_has_imported_beam_keeps_its_extras():
    """Leaving the extras out is for a process that has not imported Beam
    yet: in one that has (a notebook, a test), nothing changes."""
    code = textwrap.dedent("""
        import apache_beam, pyarrow
        from albertprep.pipelines import warm
        warm.leave_out_beam_extras()
        import pymongo
        import apache_beam.io.gcp.bigquery
        print("kept")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "kept", done.stderr[-2000:]


def test_a_beam_that_needs_a_left_out_module_is_imported_whole():
    """Should a Beam release import one of the extras unguarded, the
    command imports Beam with it rather than fail: here a module Beam
    always needs stands in for it."""
    code = textwrap.dedent("""
        import sys
        from albertprep.pipelines import warm
        warm._BEAM_EXTRAS = (*warm._BEAM_EXTRAS, "apache_beam.coders")
        warm.leave_out_beam_extras()
        import apache_beam
        assert sys.modules["apache_beam.coders"] is not None and apache_beam.Pipeline
        assert sys.modules.get("pyarrow") is not None  # imported with the rest, as without the leave-out
        print("whole")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "whole", done.stderr[-2000:]


def test_bundles_end_without_waiting_out_a_200_ms_sampler_sleep(tmp_path):
    """The state sampler of every bundle, in the warm workers and in the
    command's own in-process worker, sleeps 20 ms at most (Beam's default
    200 ms was waited out at the end of every long bundle)."""
    from apache_beam.runners.worker import statesampler

    out = tmp_path / "periods"

    def period(element):  # made here, so that it is pickled by value
        from apache_beam.runners.worker import statesampler as sampler

        return element, os.getpid(), sampler.StateSampler.__init__.__defaults__

    pipeline = runners.make_pipeline([], workers=2)
    (pipeline
     | beam.Create(range(8), reshuffle=False)
     | "Key" >> beam.Map(lambda x: (x, x)) | beam.GroupByKey() | "Unkey" >> beam.Map(lambda kv: kv[0])
     | beam.Map(period) | beam.Map(repr) | beam.io.WriteToText(str(out), shard_name_template=""))
    pipeline.run().wait_until_finish()
    rows = [eval(line) for line in out.read_text().splitlines()]  # noqa: S307 (our own repr)
    assert len(rows) == 8 and os.getpid() not in {row[1] for row in rows}
    assert {row[2] for row in rows} == {(warm._SAMPLING_PERIOD_MS,)}
    assert statesampler.StateSampler.__init__.__defaults__ == (warm._SAMPLING_PERIOD_MS,)  # make_pipeline's own
