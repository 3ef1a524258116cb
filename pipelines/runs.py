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

_ITEM = struct.Struct("<QI")
_READ_BYTES = 1 << 20
# Python holds each buffered record in a bytes object and a tuple: about
# 100 bytes over its own size, counted so the bound holds for short records.
_ITEM_OVERHEAD = 100


def write_run(file: BinaryIO, items: list[tuple[int, bytes]]) -> None:
    """Writes `items`, already sorted by (key, record)."""
    pack = _ITEM.pack
    file.write(b"".join(pack(key, len(record)) + record for key, record in items))


def read_run(file: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """The (key, record) items of one run, read a megabyte at a time."""
    buffer = b""
    offset = 0
    unpack = _ITEM.unpack_from
    header = _ITEM.size
    while True:
        block = file.read(_READ_BYTES)
        if block:
            buffer = buffer[offset:] + block
            offset = 0
        end = len(buffer)
        while offset + header <= end:
            key, size = unpack(buffer, offset)
            if offset + header + size > end:
                break
            start = offset + header
            yield key, buffer[start:start + size]
            offset = start + size
        if not block:
            if offset != end:
                raise ValueError(f"run file ends inside a record ({end - offset} bytes left)")
            return


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
