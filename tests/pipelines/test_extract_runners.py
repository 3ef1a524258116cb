"""The same documents, byte for byte, from every runner and worker count."""

import json

import pytest
from conftest import BOOKS, WIKI, dask_args, make_multistream, output_files, run_extract


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    data = tmp_path_factory.mktemp("inputs")
    dump = make_multistream(data / "wiki", pages_per_stream=10)
    jsonl = data / "notes.jsonl"
    jsonl.write_text("".join(json.dumps({"text": f"Note {i}. It has two sentences."}) + "\n" for i in range(500)))
    books = [str(BOOKS / n) for n in ("botchan.txt", "chesterton-ball.txt", "shakespeare-caesar.txt")]
    specs = [str(dump), str(WIKI / "viwiki-truncated.xml"), str(WIKI / "bgwiki-utf16-sample.xml.bz2"),
             str(jsonl), *books]
    return specs, ["--split-mb", "0.2"]


def _run(inputs, output, *runner_args):
    specs, options = inputs
    summary = run_extract(specs, output, *options, *runner_args, expect=3)  # viwiki-truncated.xml is cut off
    return summary, output_files(output), (output / "summary.json").read_bytes()


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    return _run(inputs, tmp_path_factory.mktemp("one_process"))


def test_reference_run_splits_the_work(reference):
    summary, files, _ = reference
    assert len(summary["outputs"]["jsonl"]) > 10  # multistream and JSONL ranges became tasks
    path = next(p for p in summary["by_file"] if p.endswith("multistream.xml.bz2"))
    assert summary["by_file"][path] == {"article": 105, "empty": 1, "redirect": 99, "other_namespace": 1}
    assert summary["by_file"][next(p for p in summary["by_file"] if p.endswith("notes.jsonl"))] == {"article": 500}
    assert len(files) == 2 * len(summary["outputs"]["jsonl"])


def test_two_worker_processes_give_identical_bytes(inputs, reference, tmp_path):
    _, files, summary_bytes = _run(inputs, tmp_path, "--workers", "2")
    assert files == reference[1]
    assert summary_bytes == reference[2]


def test_dask_cluster_gives_identical_bytes(inputs, reference, dask_cluster, tmp_path):
    _, files, summary_bytes = _run(inputs, tmp_path, *dask_args(dask_cluster))
    assert files == reference[1]
    assert summary_bytes == reference[2]
