"""The Grain pipeline: shuffled, sharded, batched ALBERT features that resume exactly.

    dataset = PreparedDataset.open("prepared/")
    loader = AlbertLoader(dataset, LoaderConfig(batch_size=64, seed=1, dynamic_masking=True))
    with iter(loader) as batches:
        batch = next(batches)              # dict of numpy arrays, [64, 512] ...
        state = batches.get_state()        # bytes (JSON), or orbax: grain.PyGrainCheckpointSave(batches)

Built with Grain's dataset API only: `MapDataset.range(rows of this
process)` → batches of row indices → each batch read (one batched read of
the shards) and decoded (stored masks) or masked again (dynamic) →
`to_iter_dataset` (read threads) → `mp_prefetch` (worker processes) →
optional device placement. Which record each row reads is StreamOrder's
(sampler.py). Each worker makes whole batches, round robin, so the batches
are the same whatever the worker count and, side by side, whatever the
process count.

Worker processes start with spawn: a script that iterates with workers
needs the `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import gc
import hashlib
import inspect
import json
import weakref

import grain.python as grain
import jax
import numpy as np

from albertprep.core import records
from albertprep.loaders import state as loader_state
from albertprep.loaders.dataset import PreparedDataset
from albertprep.loaders.features import DynamicMasks, StoredMasks
from albertprep.loaders.placement import ShardingSpec, place_batch
from albertprep.loaders.sampler import StreamOrder
from albertprep.loaders.source import PreparedShardsSource, shard_list_digest


@dataclasses.dataclass(frozen=True)
class LoaderConfig:
    batch_size: int  # per process
    seed: int = 0  # shuffle order and dynamic masks; 0 <= seed < 2**32 (Grain's limit)
    num_epochs: int | None = None  # None: repeat endlessly (train by steps)
    shuffle: bool = True
    drop_remainder: bool = True  # fixed shapes: a short last batch would recompile a jitted step
    dynamic_masking: bool = False
    masking: records.MaskingConfig | None = None  # dynamic masking; None: the settings the data was prepared with
    worker_count: int = 0  # Grain worker processes; 0 decodes in this process
    worker_buffer_size: int = 2  # batches each worker prepares ahead
    # Threads reading records ahead, per process. 0 reads inline, the fastest
    # from a local disk or the page cache (threads contend for the GIL: 13k
    # against 6k examples/s measured); raise it for network storage.
    read_threads: int = 0
    prefetch_buffer_size: int = 256  # records read ahead when read_threads > 0
    process_index: int | None = None  # None: jax.process_index()
    process_count: int | None = None  # None: jax.process_count()

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {self.seed}")
        if self.num_epochs is not None and self.num_epochs < 1:
            raise ValueError(f"num_epochs must be at least 1 or None (endless), got {self.num_epochs}")
        if self.worker_count < 0:
            raise ValueError(f"worker_count must be at least 0, got {self.worker_count}")
        if (self.process_index is None) != (self.process_count is None):
            raise ValueError("give both process_index and process_count, or neither (then JAX's are used)")
        if self.process_count is not None and not 0 <= self.process_index < self.process_count:
            raise ValueError(f"process_index {self.process_index} is not in [0, {self.process_count})")


@dataclasses.dataclass(frozen=True, eq=False)
class _ReadBatch:
    """Row indices of one batch → the batch: what each worker process runs."""

    source: PreparedShardsSource
    order: StreamOrder
    decode: StoredMasks | DynamicMasks

    def __call__(self, local_indices: np.ndarray) -> dict[str, np.ndarray]:
        positions = [self.order.position_of(int(i)) for i in local_indices]
        keys = [self.order.key_of(position) for position in positions]
        rows = self.decode.batch(self.source.__getitems__(keys), [self.order.epoch_of(p) for p in positions], keys)
        return {name: np.stack([row[name] for row in rows]) for name in rows[0]}


class AlbertLoader:
    """Fixed-shape ALBERT batches from one split; iterate it for a checkpointable iterator."""

    def __init__(self, dataset: PreparedDataset, config: LoaderConfig, sharding: ShardingSpec | None = None):
        self.dataset = dataset
        self.config = config
        self.sharding = sharding
        if config.process_count is None:
            self.process_index, self.process_count = jax.process_index(), jax.process_count()
        else:
            self.process_index, self.process_count = config.process_index, config.process_count
        self.masking = config.masking or dataset.masking
        if config.dynamic_masking and self.masking.max_predictions_per_seq > dataset.layout.max_predictions_per_seq:
            raise ValueError(f"masking.max_predictions_per_seq {self.masking.max_predictions_per_seq} exceeds the "
                             f"layout's {dataset.layout.max_predictions_per_seq}")
        self.order = StreamOrder(dataset.num_records, seed=config.seed, shuffle=config.shuffle,
                                 num_epochs=config.num_epochs, process_index=self.process_index,
                                 process_count=self.process_count, batch_size=config.batch_size)
        if config.dynamic_masking:
            dataset.masking_vocab()  # checks the tokenizer here, once: the workers read it again
            decode = DynamicMasks(dataset.layout, self.masking, dataset, config.seed)
        else:
            decode = StoredMasks(dataset.layout)
        batches = (grain.MapDataset.range(self.order.local_length)
                   .batch(config.batch_size, drop_remainder=config.drop_remainder)
                   .map(_ReadBatch(PreparedShardsSource(dataset), self.order, decode)))
        self._dataset = batches.to_iter_dataset(grain.ReadOptions(num_threads=config.read_threads,
                                                                  prefetch_buffer_size=config.prefetch_buffer_size))
        if config.worker_count > 0:
            self._dataset = self._dataset.mp_prefetch(grain.MultiprocessingOptions(
                num_workers=config.worker_count, per_worker_buffer_size=config.worker_buffer_size))

    @functools.cached_property
    def fingerprint(self) -> dict:
        """Everything that decides which batches come out, for the checkpoint."""
        config = self.config
        return {
            "split": self.dataset.split,
            "records": self.dataset.num_records,
            "shards": shard_list_digest(self.dataset),
            "layout": dataclasses.asdict(self.dataset.layout),
            "batch_size": config.batch_size,
            "drop_remainder": config.drop_remainder,
            "num_epochs": config.num_epochs,
            "shuffle": config.shuffle,
            "seed": config.seed,
            "dynamic_masking": config.dynamic_masking,
            "masking": dataclasses.asdict(self.masking) if config.dynamic_masking else None,
            "process_index": self.process_index,
            "process_count": self.process_count,
            "worker_count": config.worker_count,  # Grain's state holds one position per worker
        }

    @property
    def num_batches(self) -> int | None:
        """Batches this process yields in all (None when endless): the same
        on every process, since each reads floor(epochs * N / process_count).
        0 when the split is too small for one batch (e.g. a tiny eval split)."""
        if self.config.num_epochs is None:
            return None
        whole, rest = divmod(self.order.local_length, self.config.batch_size)
        return whole + (1 if rest and not self.config.drop_remainder else 0)

    def __iter__(self) -> AlbertIterator:
        if self.config.worker_count > 0:
            _refuse_unguarded_script()
            _mark_absl_flags_parsed()
        return AlbertIterator(self, iter(self._dataset))


class AlbertIterator:
    """Grain's iterator plus our fingerprint in its state and device placement.

    get_state/set_state/start_prefetch have the signatures Grain's orbax
    handler calls, so grain.PyGrainCheckpointSave(iterator) and
    grain.PyGrainCheckpointRestore(iterator) save and restore it with orbax.
    """

    def __init__(self, loader: AlbertLoader, grain_iterator: grain.DatasetIterator):
        self._loader = loader
        self._grain_iterator = grain_iterator
        self.batches = 0  # consumed so far, restored with the state
        _OPEN_ITERATORS.add(self)

    def __iter__(self) -> AlbertIterator:
        return self

    def __next__(self) -> dict:
        if self._grain_iterator is None:
            raise ValueError("the loader's iterator is closed")
        try:
            batch = next(self._grain_iterator)
        except StopIteration:
            raise
        except BaseException:  # a worker died, or Ctrl-C: stop the others now, or exit waits on their threads
            self.close()
            raise
        self.batches += 1
        if self._loader.sharding is not None:
            return place_batch(batch, self._loader.sharding)
        return batch

    def get_state(self) -> bytes:
        return loader_state.encode_state(self._loader.fingerprint, self._grain_iterator.get_state(), self.batches)

    def set_state(self, state: bytes | str) -> None:
        """Raises loader_state.IncompatibleStateError for another configuration."""
        grain_state, batches = loader_state.decode_state(state, self._loader.fingerprint)
        self._grain_iterator.set_state(grain_state)
        self.batches = batches

    def start_prefetch(self) -> None:
        """Grain's orbax handler calls it after a restore; workers start on the first batch anyway."""

    def close(self) -> None:
        """Stops the worker processes and frees their shared memory now, not at garbage collection."""
        if self._grain_iterator is None:
            return
        self._grain_iterator.close()
        # Dropped and collected now: Grain's iterators close again when
        # finalised, and at interpreter exit (the name of a `with` block
        # still bound) that second close prints errors from half-torn-down modules.
        self._grain_iterator = None
        gc.collect()

    def __enter__(self) -> AlbertIterator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# Iterators not closed by their users are closed before the interpreter
# tears its modules down (see AlbertIterator.close).
_OPEN_ITERATORS: weakref.WeakSet[AlbertIterator] = weakref.WeakSet()


@atexit.register
def _close_open_iterators() -> None:
    for iterator in list(_OPEN_ITERATORS):
        iterator.close()


def _refuse_unguarded_script() -> None:
    """Workers start with spawn, which imports the main script again in each
    worker (as `__mp_main__`). A script that iterates with workers outside
    `if __name__ == "__main__":` would start workers from the workers; the
    worker says why in one line and ends, instead of a page of tracebacks."""
    frame = inspect.currentframe()
    while frame is not None and not (frame.f_code.co_name == "<module>"
                                     and frame.f_globals.get("__name__") == "__mp_main__"):
        frame = frame.f_back
    if frame is not None:  # the script's own top-level code, run again in a worker
        raise SystemExit("albertprep loader: worker_count > 0 starts worker processes with spawn, which runs the "
                         "main script again in each: put the code that iterates under "
                         "`if __name__ == \"__main__\":`")


def _mark_absl_flags_parsed() -> None:
    """Grain's workers read absl flags (its profiler's) and, with JAX
    imported, crash with UnparsedFlagAccessError unless the flags count as
    parsed. A program run by absl.app has parsed them already; any other
    gets the flags' defaults."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def batch_digest(batch: dict[str, np.ndarray]) -> str:
    """sha256 of a batch's names, dtypes, shapes and bytes: compares runs."""
    digest = hashlib.sha256()
    for name in sorted(batch):
        array = np.ascontiguousarray(np.asarray(batch[name]))
        digest.update(json.dumps([name, array.dtype.str, array.shape]).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
