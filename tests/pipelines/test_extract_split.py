"""Plain dumps split into tasks by default, and the documents are the same
bytes whatever the split: `.xml` by byte ranges cut at <page>, one-stream
`.xml.bz2` by bz2 blocks."""

import bz2

import pytest
from conftest import WIKI, run_extract

from albertprep.pipelines import sources, textformats


def _documents(output, summary) -> bytes:
    return b"".join((output / name).read_bytes() for name in summary["outputs"]["jsonl"])


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    data = tmp_path_factory.mktemp("dumps")
    xml = bz2.decompress((WIKI / "enwiki-sample.xml.bz2").read_bytes())
    (data / "enwiki-plain.xml").write_bytes(xml)
    (data / "enwiki-level1.xml.bz2").write_bytes(bz2.compress(xml, 1))  # many small blocks
    return data


@pytest.mark.parametrize("name", ["enwiki-plain.xml", "enwiki-level1.xml.bz2"])
def test_a_plain_dump_gives_the_same_documents_whatever_the_split(dumps, tmp_path, name):
    path = str(dumps / name)
    whole = run_extract([path], tmp_path / "whole", "--split-mb", "1000")
    assert len(whole["outputs"]["jsonl"]) == 1
    parts = run_extract([path], tmp_path / "parts", "--split-mb", "0.1")
    assert len(parts["outputs"]["jsonl"]) > 5
    assert _documents(tmp_path / "parts", parts) == _documents(tmp_path / "whole", whole)
    counts = {"article": 105, "empty": 1, "redirect": 99, "other_namespace": 1}
    assert parts["by_file"][path] == whole["by_file"][path] == counts


def test_the_default_split_gives_enough_tasks_and_ignores_the_worker_count(dumps):
    path = str(dumps / "enwiki-plain.xml")
    tasks = sources.plan([path])  # 6.1 MB: 256 KiB tasks
    assert len(tasks) == 24 and all(t.ranged for t in tasks)
    assert textformats.auto_split(50 << 30) == 64 << 20 and textformats.auto_split(10 << 20) == 256 << 10
    assert textformats.auto_split(640 << 20) == 10 << 20  # 64 tasks


def test_a_utf16_dump_is_read_whole():
    tasks = sources.plan([str(WIKI / "bgwiki-utf16-sample.xml.bz2")], sources.PlanOptions(split_bytes=1000))
    assert len(tasks) == 1 and not tasks[0].ranged


def test_an_automatic_split_gives_a_one_stream_bz2_tasks_of_2_mib_at_least_in_fours(tmp_path):
    """Each such task decodes half a block past its end (sources._MIN_AUTO_BZ2_SPLIT):
    at least 2 MiB a task, and a multiple of four of them, so that two or four
    workers get equal shares. An explicit split is taken as given."""
    xml = bz2.decompress((WIKI / "enwiki-sample.xml.bz2").read_bytes())
    path = tmp_path / "enwiki-big.xml.bz2"
    path.write_bytes(bz2.compress(xml * 2, 1))  # about 3.9 MB: two 2 MiB tasks, made four
    tasks = sources.plan([str(path)])
    assert len(tasks) == 4 and all(t.ranged for t in tasks)
    assert {t.size for t in tasks} <= {path.stat().st_size // 4, path.stat().st_size // 4 + 1}
    small = tmp_path / "enwiki-small.xml.bz2"
    small.write_bytes(bz2.compress(xml, 9))  # 1.7 MB: under 2 MiB, one task, not four
    assert len(sources.plan([str(small)])) == 1
    given = sources.plan([str(path)], sources.PlanOptions(split_bytes=300_000))
    assert len(given) == -(-path.stat().st_size // 300_000)  # 13: not rounded to a multiple of four
