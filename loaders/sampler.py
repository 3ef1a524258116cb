"""Which record comes at each position of the stream, and its masking seed.

How Grain 0.2.18 numbers records (checked in its samplers.py, data_loader.py
and dataset/transformations/shuffle.py): the DataLoader asks the sampler for
global index g = local_index * process_count + process_index. An unsharded
IndexSampler over N records maps g to position g mod N of epoch g // N, and
with shuffle=True the order inside an epoch is index_shuffle with seed
(seed + epoch) % 2**32: a different seeded permutation of all N records each
epoch. So epoch = g // N, and the processes, taking every process_count-th g,
split each epoch between them with no record twice and none left out. With
a number of epochs, each process reads floor(epochs * N / process_count)
indices so that all take the same number of steps: the last
(epochs * N) mod process_count records of the final epoch are not read.

The sampler here is therefore unsharded on purpose: a sharded IndexSampler
would cut the records into one contiguous block per process and shuffle only
inside it, and with uneven blocks the processes' epochs would drift apart.

One step further, `batch_block` makes a global batch the same, in the same
order, whatever the number of processes: the stream position of the j-th
row of process p's k-th batch (b rows) is k * b * P + p * b + j, and
jax.make_array_from_process_local_data puts process p's rows at exactly
those rows of the global batch. So the global batches of a multi-host run
are those of a one-process run over the same devices, and so are its
losses (dropout masks, drawn per row of the global batch, included). Grain
still hands the sampler its g = i * P + p; the sampler maps it to that
position, a bijection of every whole round of P batches; the rows after
the last whole round (never a whole global batch) keep position g. With
worker processes, which each batch every worker_count-th local index, the
block is 1 and the mapping the identity.
"""

from __future__ import annotations

import grain.python as grain

from albertprep.core import records


class EpochSampler(grain.IndexSampler):
    """IndexSampler over all records whose per-record generator, handed to
    RandomMapTransform, is records.rng_for(masking_seed, epoch, record key).

    The draw depends on (seed, epoch, which instance) alone, not on the
    process count, worker count, batch size or position in the stream, so
    dynamic masks are reproducible and differ from epoch to epoch.
    """

    def __init__(self, num_records: int, *, seed: int, shuffle: bool, num_epochs: int | None,
                 masking_seed: int | None, process_count: int = 1, batch_block: int = 1):
        super().__init__(num_records, grain.NoSharding(), shuffle=shuffle, num_epochs=num_epochs, seed=seed)
        self._masking_seed = masking_seed
        self._process_count = process_count
        self._batch_block = batch_block
        round_size = process_count * batch_block
        self._whole_rounds_end = len(self) // round_size * round_size

    def epoch_of(self, position: int) -> int:
        return position // self._num_records

    def position_of(self, index: int) -> int:
        """Stream position of Grain's index g (see the module docstring)."""
        if index >= self._whole_rounds_end:
            return index
        local, process = divmod(index, self._process_count)
        batch, row = divmod(local, self._batch_block)
        return (batch * self._process_count + process) * self._batch_block + row

    def __getitem__(self, index: int) -> grain.RecordMetadata:
        # IndexSampler.__getitem__ would also build a Philox generator per
        # record that nothing uses (a fifth of the static decode's cost), so
        # the key comes straight from its own shuffled key dataset.
        if index < 0 or index >= len(self):
            raise IndexError(f"index {index} is outside the sampler's [0, {len(self)})")
        position = self.position_of(index)
        record_key = int(self._record_keys[position])
        rng = None
        if self._masking_seed is not None:
            rng = records.rng_for(self._masking_seed, self.epoch_of(position), record_key)
        return grain.RecordMetadata(index=index, record_key=record_key, rng=rng)

    def __repr__(self) -> str:  # Grain compares it with the one in a restored state
        mapping = ""  # the identity, as states saved before the mapping existed assume
        if self._process_count > 1 and self._batch_block > 1:
            mapping = f", process_count={self._process_count}, batch_block={self._batch_block}"
        return f"EpochSampler({super().__repr__()}, masking_seed={self._masking_seed}{mapping})"
