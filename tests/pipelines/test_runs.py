"""Sorted runs: a shard written from runs has the order one sort of all its records gives."""

import io

import numpy as np
import pytest

from albertprep.pipelines import runs


def _items(keys):
    return [(key, f"record {key}".encode() * (key % 7)) for key in keys]


def test_a_run_reads_back_what_was_written():
    items = sorted(_items(np.random.default_rng(1).permutation(5000).tolist()))
    buffer = io.BytesIO()
    runs.write_run(buffer, items)
    buffer.seek(0)
    assert list(runs.read_run(buffer)) == items


def test_a_run_cut_short_is_an_error_not_a_shorter_run():
    buffer = io.BytesIO()
    runs.write_run(buffer, _items([1, 2, 3]))
    with pytest.raises(ValueError, match="ends inside a record"):
        list(runs.read_run(io.BytesIO(buffer.getvalue()[:-3])))


def test_the_merge_of_runs_is_one_sort_whatever_the_flushes():
    """The same records buffered under any limit give the same merged order,
    equal to sorting them all at once."""
    items = _items(np.random.default_rng(2).permutation(3000).tolist())
    merged = []
    for limit in (1, 10_000, 1 << 30):
        written = {}

        def write(shard, part, sorted_items, written=written):
            assert sorted_items == sorted(sorted_items)
            buffer = io.BytesIO()
            runs.write_run(buffer, sorted_items)
            written[(shard, part)] = buffer.getvalue()

        buffer = runs.RunBuffer(limit, write)
        for key, record in items:
            buffer.add(key % 3, key, record)
        buffer.flush()
        by_shard = [runs.merge(runs.read_run(io.BytesIO(data)) for (shard, _), data in sorted(written.items())
                               if shard == s) for s in range(3)]
        merged.append([list(shard) for shard in by_shard])
    assert merged[0] == merged[1] == merged[2]
    assert merged[0] == [sorted(i for i in items if i[0] % 3 == s) for s in range(3)]


def test_the_buffer_holds_no_more_than_its_limit():
    flushes = {}  # a flush writes every shard's run: the bytes of each flush

    def write(shard, part, items):
        flushes[part] = flushes.get(part, 0) + sum(len(record) + 100 for _, record in items)

    buffer = runs.RunBuffer(50_000, write)
    for key, record in _items(range(2000)):
        buffer.add(key % 4, key, record)
    assert len(flushes) > 3 and max(flushes.values()) < 50_000 + 200


def test_a_merge_of_many_runs_reads_small_blocks_and_the_same_items():
    assert runs.read_block_bytes(1) == 256 << 10 and runs.read_block_bytes(1000) * 1000 <= runs.MERGE_BYTES
    assert runs.read_block_bytes(10**6) == 16 << 10  # a floor: a block still holds whole records
    items = sorted(_items(range(300)))
    buffer = io.BytesIO()
    runs.write_run(buffer, items)
    assert list(runs.read_run(io.BytesIO(buffer.getvalue()), block_bytes=7)) == items  # records span blocks
