"""Record bytes to ALBERT's padded features: stored masks or fresh ones.

Both run in Grain's worker processes, so they carry only small
picklable values (the layout, the masking settings, the vocabulary ids) and
use albertprep.core.records for everything: the loader never has its own copy of
the record format or of the masking algorithm.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from albertprep.core import records
from albertprep.loaders.dataset import PreparedDataset

FEATURE_NAMES = records.FEATURE_NAMES  # re-exported: the loader's batches hold exactly these


@dataclasses.dataclass(frozen=True)
class StoredMasks:
    """The masks the prepare job drew (static masking, as ALBERT's own data)."""

    layout: records.FeatureLayout

    def batch(self, stored: list[bytes], epochs: list[int], keys: list[int]) -> list[dict[str, np.ndarray]]:
        return [records.decode_features(record, self.layout) for record in stored]


@dataclasses.dataclass(frozen=True, eq=False)
class DynamicMasks:
    """Ignores the stored masks and masks the original ids again.

    The generator is records.rng_for(seed, epoch, record key), so each epoch
    masks an instance differently, and the same way every run, whatever the
    process count, worker count or batch size.

    The masking vocabulary is read from the dataset's SentencePiece model in
    the process that masks, not pickled to it: a worker is sent a few hundred
    bytes. (A spawned worker that dies before reading what its parent writes
    leaves the parent blocked on the pipe once that is over 64 KiB, as the
    vocabulary's 30,000 ids are.)
    """

    layout: records.FeatureLayout
    config: records.MaskingConfig
    dataset: PreparedDataset  # for its tokenizer; pickled without its manifest
    seed: int

    @functools.cached_property
    def vocab(self) -> records.MaskingVocab:
        return self.dataset.masking_vocab()

    def __getstate__(self) -> dict:
        light = dataclasses.replace(self.dataset, shards=(), manifest=None)
        return {"layout": self.layout, "config": self.config, "dataset": light, "seed": self.seed}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def batch(self, stored: list[bytes], epochs: list[int], keys: list[int]) -> list[dict[str, np.ndarray]]:
        """The records masked again in one records.mask_batch: each from its
        own generator, so a record's masks do not depend on its batch."""
        instances = [records.decode(record) for record in stored]
        to_mask = []
        seeded = records.Reseeder()  # records.rng_for's generators, without making one a record
        for instance, epoch, key in zip(instances, epochs, keys):
            starts = instance.word_starts
            draws = seeded(self.seed, epoch, key).random(records.masking_draws(starts, self.config))
            to_mask.append(records.ToMask(instance.original_ids(), starts, instance.len_a, draws))
        masked = records.mask_batch(to_mask, self.config, self.vocab)
        return [records.to_features(records.Instance(ids, i.word_starts, i.len_a, i.sop_label, positions, originals),
                                    self.layout)
                for i, (ids, positions, originals) in zip(instances, masked)]
