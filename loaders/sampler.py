"""Which record comes at each position of the stream, and which position each row of a process reads.

Positions: the stream is epoch after epoch of all N records; position g is
in epoch g // N, and the record there is
`grain.MapDataset.range(N).shuffle(seed)[g]`: Grain's own index_shuffle,
reseeded with (seed + epoch) for each epoch, so each epoch is a different
seeded permutation (the order Grain's IndexSampler gives; a test holds the
two equal). Without shuffling the record at g is g mod N.

Processes: process p of P reads its rows of each global batch. With b rows
a batch, the j-th row of its k-th batch is position k·b·P + p·b + j, and
jax.make_array_from_process_local_data puts process p's rows at exactly
those rows of the global batch; so the global batches of a multi-host run
are those of a one-process run over the same devices (and so are its
losses). With a number of epochs each process reads floor(epochs·N / P)
rows, so that all take the same number of steps; the rows after the last
whole round of P batches (never a whole global batch) are read
interleaved: local row i there is position i·P + p.

Worker processes (Grain's mp_prefetch) each make whole batches of this
order, round robin, so the batches do not depend on the worker count
either.
"""

from __future__ import annotations

import dataclasses
import functools
import sys

import grain.python as grain


@dataclasses.dataclass(frozen=True)
class StreamOrder:
    num_records: int
    seed: int
    shuffle: bool
    num_epochs: int | None  # None: endless
    process_index: int = 0
    process_count: int = 1
    batch_size: int = 1  # rows a batch of this process

    @functools.cached_property
    def _keys(self) -> grain.MapDataset:
        keys = grain.MapDataset.range(self.num_records)
        return keys.shuffle(seed=self.seed) if self.shuffle else keys

    @property
    def local_length(self) -> int:
        """Rows this process reads (sys.maxsize // P when endless)."""
        total = sys.maxsize if self.num_epochs is None else self.num_epochs * self.num_records
        return total // self.process_count

    @functools.cached_property
    def _whole_rounds_end(self) -> int:
        """Local rows in whole rounds of P batches."""
        return self.local_length // self.batch_size * self.batch_size

    def position_of(self, local_index: int) -> int:
        if local_index >= self._whole_rounds_end:
            return local_index * self.process_count + self.process_index
        batch, row = divmod(local_index, self.batch_size)
        return (batch * self.process_count + self.process_index) * self.batch_size + row

    def epoch_of(self, position: int) -> int:
        return position // self.num_records

    def key_of(self, position: int) -> int:
        """The record (its index in the shards, in manifest order) at a position."""
        return int(self._keys[position])
