"""The whole chain on a Dask cluster: extract, dedup and prepare, each run on
the cluster from the last one's output there, give the local runner's bytes
at every stage (benchmarks/scale.py does the same at a gigabyte)."""

import json
import shutil

import pytest
from conftest import ALBERT_MODEL, BOOKS, dask_args, make_multistream

from albertprep import cli
from albertprep.pipelines import runners


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A multistream dump (the enwiki sample) and a folder of books that
    holds one book twice, so that dedup removes something."""
    data = tmp_path_factory.mktemp("chain-inputs")
    dump = make_multistream(data / "wiki", pages_per_stream=20)
    books = data / "books"
    books.mkdir()
    for name in ("botchan.txt", "blake-poems.txt", "shakespeare-caesar.txt"):
        shutil.copy(BOOKS / name, books / name)
    shutil.copy(BOOKS / "blake-poems.txt", books / "blake-poems-again.txt")
    return [str(dump), str(books)]


def _chain(inputs, root, *runner_args) -> dict:
    """Every stage's data files and summary, by stage."""
    documents, deduplicated, prepared = (root / name for name in ("documents", "deduplicated", "prepared"))
    assert cli.main(["extract", *inputs, "--output", str(documents), *runner_args]) == 0
    assert cli.main(["dedup", str(documents), "--output", str(deduplicated), *runner_args]) == 0
    assert cli.main(["prepare", str(deduplicated), "--output", str(prepared), "--spm-model", str(ALBERT_MODEL),
                     "--max-seq-length", "128", "--dupe-factor", "2", "--num-shards", "2", "--eval-fraction", "0.05",
                     *runner_args]) == 0
    return {
        "extract": {p.name: p.read_bytes() for p in sorted(documents.glob("documents-*"))}
        | {"summary.json": (documents / "summary.json").read_bytes()},
        "dedup": {p.name: p.read_bytes() for p in sorted(deduplicated.iterdir()) if p.is_file()},
        "prepare": {p.name: p.read_bytes() for p in sorted(prepared.glob("*.array_record"))},
        "splits": json.loads((prepared / "manifest.json").read_text())["splits"],
    }


@pytest.fixture(scope="module")
def local(inputs, tmp_path_factory):
    return _chain(inputs, tmp_path_factory.mktemp("local"))


def test_the_local_chain_makes_data_at_every_stage(local):
    assert len(local["extract"]) > 2
    dedup = json.loads(local["dedup"]["summary.json"])
    assert dedup["outcomes"]["duplicate"] == 1  # the second copy of the poems
    assert len(local["prepare"]) == 3 and local["splits"]["train"]["records"] > 1000


def test_the_chain_on_a_dask_cluster_gives_the_local_runners_bytes(inputs, local, dask_cluster, tmp_path):
    on_dask = _chain(inputs, tmp_path, *dask_args(dask_cluster))
    for stage in ("extract", "dedup", "prepare", "splits"):
        assert on_dask[stage] == local[stage], stage


def test_a_dask_job_gets_a_few_partitions_per_worker_thread(dask_cluster):
    """The cluster has 2 threads: a job of 64 tasks is cut into 8 partitions,
    not 64 (each a part of every shuffle), and one of 3 tasks into 3."""
    args = dask_args(dask_cluster)
    assert runners.dask_partitions(args, 64) == 2 * runners.PARTITIONS_PER_THREAD
    assert runners.dask_partitions(args, 3) == 3


def test_an_address_where_no_scheduler_answers_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runners, "_DASK_CONNECT_SECONDS", 2.0)
    code = cli.main(["extract", str(BOOKS / "blake-poems.txt"), "--output", str(tmp_path / "out"),
                     f"--runner={runners.DASK_RUNNER}", "--dask_client_address=tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "--dask_client_address tcp://127.0.0.1:9: no Dask scheduler answered" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
