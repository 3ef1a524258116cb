"""Shared fixtures: the real corpora in ../shared and one extract of them."""

from __future__ import annotations

import bz2
import json
import os
import pathlib
import sys

import pytest

# One JAX compilation cache for the whole session, subprocesses included (they
# inherit the environment): the suite runs the same tiny models at the same
# shapes many times, and compiling them again took about a third of its time.
# A cached executable is the one XLA compiled, so results are unchanged.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="albertprep-jax-cache-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)

from albertprep import cli
from albertprep.core.documents import Document, read_documents_jsonl
from albertprep.pipelines import mediawiki

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The real corpora live beside the project, in ../shared/corpora (never copied
# into it). ALBERTPREP_CORPORA points elsewhere; a clone made outside the
# workplace's tree (in /tmp, say) falls back to the workplace's own copy.
_CANDIDATES = [os.environ.get("ALBERTPREP_CORPORA"), ROOT.parent / "shared" / "corpora", "/work/shared/corpora"]
CORPORA = next((pathlib.Path(c) for c in _CANDIDATES if c and (pathlib.Path(c) / "README.md").exists()), None)
if CORPORA is None:
    raise pytest.UsageError(f"the test corpora are missing (looked in {[str(c) for c in _CANDIDATES if c]}); "
                            "set ALBERTPREP_CORPORA")
WIKI = CORPORA / "wiki"
BOOKS = CORPORA / "books"
ALBERT_MODEL = CORPORA / "spm" / "albert-en-30k-clean.model"  # ALBERT's own 30k-clean vocabulary


@pytest.fixture(scope="session")
def dask_cluster():
    """One dask.distributed cluster for every Dask test: 2 worker processes
    of one thread on 127.0.0.1, as a small real deployment has. Its
    workers live through the session, as a real cluster's do between jobs."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster


def dask_args(cluster) -> list[str]:
    """The Beam options that run a job on `cluster`."""
    from albertprep.pipelines import runners

    return [f"--runner={runners.DASK_RUNNER}", f"--dask_client_address={cluster.scheduler_address}"]


def run_extract(inputs: list[str], output: pathlib.Path, *extra: str, expect: int = 0) -> dict:
    """Runs extract; `expect` 3 where an input is known to be cut off (viwiki-truncated.xml)."""
    code = cli.main(["extract", *inputs, "--output", str(output), *extra])
    assert code == expect
    return json.loads((output / "summary.json").read_text())


def load_documents(output: pathlib.Path, summary: dict) -> dict[str, Document]:
    documents: dict[str, Document] = {}
    for name in summary["outputs"]["jsonl"]:
        for document in read_documents_jsonl(str(output / name)):
            assert document.id not in documents, f"duplicate id {document.id}"
            documents[document.id] = document
    return documents


def output_files(output: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(output.glob("documents-*"))}


def make_multistream(directory: pathlib.Path, pages_per_stream: int = 10) -> pathlib.Path:
    """enwiki-sample recompressed as a multistream dump with its index."""
    directory.mkdir(parents=True, exist_ok=True)
    dump = directory / "enwiki-20160101-pages-articles-multistream.xml.bz2"
    index = directory / "enwiki-20160101-pages-articles-multistream-index.txt.bz2"
    with bz2.open(WIKI / "enwiki-sample.xml.bz2") as source, open(dump, "wb") as out, open(index, "wb") as idx:
        mediawiki.write_multistream(source, out, idx, pages_per_stream)
    return dump


@pytest.fixture(scope="session")
def small_prepared(tmp_path_factory) -> pathlib.Path:
    """Blake's poems prepared with ALBERT's vocabulary: 3 train shards, length 128."""
    output = tmp_path_factory.mktemp("small") / "prepared"
    code = cli.main(["prepare", str(BOOKS / "blake-poems.txt"), "--output", str(output), "--spm-model",
                     str(ALBERT_MODEL), "--dupe-factor", "2", "--max-seq-length", "128", "--num-shards", "3",
                     "--eval-fraction", "0"])
    assert code == 0
    return output


@pytest.fixture(scope="session")
def corpus_extract(tmp_path_factory) -> tuple[pathlib.Path, dict, dict[str, Document]]:
    """Every wiki dump and book of ../shared/corpora, extracted once."""
    output = tmp_path_factory.mktemp("extract")
    summary = run_extract([str(WIKI), str(BOOKS)], output, expect=cli.EXIT_INPUT_PROBLEMS)
    return output, summary, load_documents(output, summary)


@pytest.fixture(scope="session")
def pretrain_data(tmp_path_factory) -> pathlib.Path:
    """A small prepared directory for pretraining runs: length 64, half held out for eval."""
    output = tmp_path_factory.mktemp("pretrain-data")
    inputs = [BOOKS / "botchan.txt", BOOKS / "blake-poems.txt", WIKI / "enwiki-table-markup.xml.bz2"]
    assert cli.main(["prepare", *map(str, inputs), "--output", str(output), "--spm-model", str(ALBERT_MODEL),
                     "--max-seq-length", "64", "--max-predictions-per-seq", "10", "--dupe-factor", "1",
                     "--eval-fraction", "0.5", "--num-shards", "2"]) == 0
    return output


TIMING = ("steps_per_second", "tokens_per_second", "mfu")  # metrics that vary run to run


def pretrain_command(data, workdir, *extra: str, steps: int, eval_every: int = 1000) -> list[str]:
    """A tiny fp32 CPU pretraining run: logs every step, checkpoints every 4."""
    return [sys.executable, "-m", "albertprep.cli", "pretrain", "--config", "tiny", "--data", str(data),
            "--workdir", str(workdir), "--steps", str(steps), "--batch-size", "8", "--learning-rate", "0.01",
            "--warmup-steps", "5", "--log-every", "1", "--checkpoint-every", "4", "--eval-every", str(eval_every),
            "--dtype", "float32", "--no-progress", *extra]
