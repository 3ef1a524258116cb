"""Vocabulary and shards: byte-identical from every runner and worker count."""

import json

import pytest
from conftest import ALBERT_MODEL, BOOKS, WIKI, dask_args, run_extract

from albertprep import cli
from albertprep.core.tokenizer import Tokenizer
from albertprep.pipelines import prepare


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    output = tmp_path_factory.mktemp("documents")
    inputs = [str(BOOKS / n) for n in ("botchan.txt", "chesterton-brown.txt", "blake-poems.txt")]
    run_extract([*inputs, str(WIKI / "viwiki-truncated.xml"), str(WIKI / "enwiki-table-markup.xml.bz2")], output,
                expect=3)  # viwiki-truncated.xml is cut off
    return output


def _prepare(documents, output, *runner_args):
    args = ["prepare", str(documents), "--output", str(output), "--spm-model", str(ALBERT_MODEL),
            "--dupe-factor", "2", "--max-seq-length", "128", "--num-shards", "3", "--eval-fraction", "0.4",
            "--split-mb", "0.2", *runner_args]
    assert cli.main(args) == 0
    manifest = json.loads((output / "manifest.json").read_text())
    shards = {p.name: p.read_bytes() for p in sorted(output.glob("*.array_record"))}
    return shards, manifest["splits"]


@pytest.fixture(scope="module")
def reference(documents, tmp_path_factory):
    return _prepare(documents, tmp_path_factory.mktemp("one_process"))


def test_reference_has_both_splits(reference):
    shards, splits = reference
    assert len(shards) == 4 and splits["train"]["records"] > 100 and splits["eval"]["records"] > 10


def test_two_worker_processes_write_identical_shards(documents, reference, tmp_path):
    assert _prepare(documents, tmp_path, "--workers", "2") == reference


def test_small_documents_files_share_a_task_and_the_shards_stay_the_same(documents, reference, tmp_path):
    """A task joins consecutive ranges up to the split, so the many small
    files of a book set do not each write a run per shard."""
    files = [(str(p), p.stat().st_size) for p in sorted(documents.glob("documents-*.jsonl"))]
    ranges = prepare.plan_ranges(files, 200_000)
    tasks = prepare.plan_tasks(ranges, 200_000)
    assert [r for task in tasks for r in task] == ranges  # each range once, in order
    assert len(tasks) < len(ranges)
    assert all(len(task) == 1 or prepare.task_bytes(task) <= 200_000 for task in tasks)
    one_task = prepare.plan_tasks(ranges, 64 << 20)
    assert len(one_task) == 1
    assert _prepare(documents, tmp_path, "--split-mb", "64") == reference  # one task: the same shards


def test_albert_compat_borrows_b_the_same_whatever_the_split_and_workers(documents, tmp_path):
    """--albert-compat takes B from anywhere in the corpus (its B pool), so
    the shards do not depend on how the documents were split into tasks."""
    runs = []
    for name, runner_args in (("small", ("--split-mb", "0.05")), ("two", ("--workers", "2"))):
        shards, splits = _prepare(documents, tmp_path / name, "--albert-compat", *runner_args)
        runs.append(shards)
        assert splits["train"]["statistics"]["sop"]["random_b"] > 0
    assert runs[0] == runs[1]


def test_dask_cluster_writes_identical_shards(documents, reference, dask_cluster, tmp_path):
    assert _prepare(documents, tmp_path, *dask_args(dask_cluster)) == reference


def test_trained_vocabulary_is_albert_shaped_and_reproducible(documents, tmp_path):
    models = []
    for workers in ("1", "2"):
        output = tmp_path / f"vocab{workers}"
        assert cli.main(["vocab", str(documents), "--output", str(output), "--vocab-size", "3000",
                         "--sample-sentences", "5000", "--workers", workers, "--split-mb", "0.2"]) == 0
        models.append((output / "spm.model").read_bytes())
    assert models[0] == models[1]
    tokenizer = Tokenizer(models[0])  # checks <pad>=0 <unk>=1 [CLS]=2 [SEP]=3 [MASK]=4
    assert tokenizer.vocab_size == 3000
    assert tokenizer.pieces[5:13] == ["(", ")", '"', "-", ".", "–", "£", "€"]
    assert not any(p != p.lower() for p in tokenizer.pieces[13:])  # trained on lower-cased text
    ids = tokenizer.encode(["The Wisdom of Father Brown."])[0]
    assert "".join(tokenizer.pieces[i] for i in ids).replace("\u2581", " ").strip() == "the wisdom of father brown."
