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
"""

from __future__ import annotations

import grain.python as grain

from pipelines import records


class EpochSampler(grain.IndexSampler):
    """IndexSampler over all records whose per-record generator, handed to
    RandomMapTransform, is records.rng_for(masking_seed, epoch, record key).

    The draw depends on (seed, epoch, which instance) alone, not on the
    process count, worker count, batch size or position in the stream, so
    dynamic masks are reproducible and differ from epoch to epoch.
    """

    def __init__(self, num_records: int, *, seed: int, shuffle: bool, num_epochs: int | None,
                 masking_seed: int | None):
        super().__init__(num_records, grain.NoSharding(), shuffle=shuffle, num_epochs=num_epochs, seed=seed)
        self._masking_seed = masking_seed

    def epoch_of(self, index: int) -> int:
        return index // self._num_records

    def __getitem__(self, index: int) -> grain.RecordMetadata:
        # IndexSampler.__getitem__ would also build a Philox generator per
        # record that nothing uses (a fifth of the static decode's cost), so
        # the key comes straight from its own shuffled key dataset.
        if index < 0 or index >= len(self):
            raise IndexError(f"index {index} is outside the sampler's [0, {len(self)})")
        record_key = int(self._record_keys[index])
        rng = None
        if self._masking_seed is not None:
            rng = records.rng_for(self._masking_seed, self.epoch_of(index), record_key)
        return grain.RecordMetadata(index=index, record_key=record_key, rng=rng)

    def __repr__(self) -> str:  # Grain compares it with the one in a restored state
        return f"EpochSampler({super().__repr__()}, masking_seed={self._masking_seed})"
