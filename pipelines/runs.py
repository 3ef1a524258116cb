"""Sorted runs: how a shard is written without ever being held in memory.

An instance task does not send its records through a GroupByKey (a shard
of 128 MB would then sit in one worker's memory, and the local runner holds
every record of the job in its own). It keeps them per shard in a buffer
of bounded size; when the buffer is full, and when the task ends, each
shard's records are sorted by key and written as one run file. A shard is
then the streaming k-way merge of its runs, in the same order a sort of all
its records would give: the bytes do not depend on how many tasks or
flushes there were, and a writer holds one record per run.

A run file is a sequence of (key: uint64 LE, size: uint32 LE, record) with
keys ascending. Nothing here imports Beam: the callers open the files (on
any Beam filesystem) and hand over file objects.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import BinaryIO

import numpy as np

_ITEM = struct.Struct("<QI")
_READ_BYTES = 256 << 10  # the most a reader holds of one run
MERGE_BYTES = 16 << 20  # what a merge holds of all its runs together, whatever their number
_MIN_READ_BYTES = 16 << 10
_WRITE_ITEMS = 1024  # items joined per write: a flush does not copy the whole buffer
# Python holds each buffered record in a bytes object and a tuple: about
# 100 bytes over its own size, counted so the bound holds for short records.
_ITEM_OVERHEAD = 100


def write_run(file: BinaryIO, items: list[tuple[int, bytes]]) -> None:
    """Writes `items`, already sorted by (key, record)."""
    pack = _ITEM.pack
    for at in range(0, len(items), _WRITE_ITEMS):
        file.write(b"".join(pack(key, len(record)) + record for key, record in items[at:at + _WRITE_ITEMS]))


def run_bytes(items: list[tuple[int, bytes]]) -> int:
    """The size `write_run` gives `items`."""
    return _ITEM.size * len(items) + sum(len(record) for _, record in items)


def read_block_bytes(runs: int) -> int:
    """The block a merge of `runs` runs reads from each, so that together
    they stay within MERGE_BYTES (a big corpus has many small runs a shard)."""
    return max(_MIN_READ_BYTES, min(_READ_BYTES, MERGE_BYTES // max(1, runs)))


def read_run(file: BinaryIO, block_bytes: int = _READ_BYTES) -> Iterator[tuple[int, bytes]]:
    """The (key, record) items of one run, read a block at a time into one
    buffer the reader keeps (grown only for a record longer than a block):
    a merge of hundreds of runs refills one of them every few records, and a
    new bytes object each time left the heap of a long-lived worker
    fragmented (peak RSS grew with the runs a shard has, so with the corpus)."""
    buffer = bytearray(max(block_bytes, _ITEM.size))
    view = memoryview(buffer)
    offset = end = 0
    unpack = _ITEM.unpack_from
    header = _ITEM.size
    while True:
        if offset:  # the partial item left over goes to the front
            view[:end - offset] = view[offset:end]
            end -= offset
            offset = 0
        if end == len(buffer):  # one item longer than the buffer: grow it
            view.release()
            buffer.extend(bytes(len(buffer)))
            view = memoryview(buffer)
        read = file.readinto(view[end:])
        end += read or 0
        while offset + header <= end:
            key, size = unpack(buffer, offset)
            if offset + header + size > end:
                if header + size > len(buffer):  # make room for it whole
                    view.release()
                    buffer.extend(bytes(header + size - len(buffer)))
                    view = memoryview(buffer)
                break
            start = offset + header
            yield key, bytes(view[start:start + size])
            offset = start + size
        if not read:
            if offset != end:
                raise ValueError(f"run file ends inside a record ({end - offset} bytes left)")
            return


def merged_files(files: list[BinaryIO]) -> Iterator[tuple[int, bytes]]:
    """All items of the run files open in `files`, merged, each read a block at a time."""
    block = read_block_bytes(len(files))
    return merge(read_run(f, block) for f in files)


def merge(runs: Iterable[Iterable[tuple[int, bytes]]]) -> Iterator[tuple[int, bytes]]:
    """All items of the runs in (key, record) order. Ties of keys (a 64-bit
    hash of ids: not expected) are broken by the bytes, so the order is the
    same whatever the runs."""
    return heapq.merge(*runs)


class RunBuffer:
    """Records per shard, flushed as sorted runs whenever they pass `limit_bytes`."""

    def __init__(self, limit_bytes: int, write: Callable[[Hashable, int, list[tuple[int, bytes]]], None]):
        """`write(shard, part, items)` stores one run; `part` counts this buffer's flushes."""
        self._limit = limit_bytes
        self._write = write
        self._shards: dict[Hashable, list[tuple[int, bytes]]] = {}
        self._bytes = 0
        self._parts = 0

    def add(self, shard: Hashable, key: int, record: bytes) -> None:
        items = self._shards.get(shard)
        if items is None:
            items = self._shards[shard] = []
        items.append((key, record))
        self._bytes += len(record) + _ITEM_OVERHEAD
        if self._bytes >= self._limit:
            self.flush()

    def add_many(self, split: int, shards: np.ndarray, keys: np.ndarray, records: list[bytes]) -> None:
        """`add` of each record, a shard at a time: record i goes to shard
        (split, shards[i]) with keys[i]. The bound is checked after the whole
        batch, so the buffer may pass it by one batch."""
        order = np.argsort(shards, kind="stable")
        cuts = (np.flatnonzero(np.diff(shards[order])) + 1).tolist()
        key_list, order_list = keys.tolist(), order.tolist()
        for lo, hi in zip([0, *cuts], [*cuts, len(order_list)]):
            group = order_list[lo:hi]
            shard = (split, int(shards[group[0]]))
            items = self._shards.get(shard)
            if items is None:
                items = self._shards[shard] = []
            items.extend([(key_list[i], records[i]) for i in group])
        self._bytes += sum(map(len, records)) + _ITEM_OVERHEAD * len(records)
        if self._bytes >= self._limit:
            self.flush()

    def flush(self) -> None:
        """Writes every shard's buffered records as a run (in shard order, so
        the run files a task leaves do not depend on dict order)."""
        for shard in sorted(self._shards):
            items = self._shards[shard]
            items.sort()
            self._write(shard, self._parts, items)
        self._shards.clear()
        self._bytes = 0
        self._parts += 1
