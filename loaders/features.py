"""Record bytes to ALBERT's padded features: stored masks or fresh ones.

Both transforms run in Grain's worker processes, so they carry only small
picklable values (the layout, the masking settings, the vocabulary ids) and
use albertprep.core.records for everything: the loader never has its own copy of
the record format or of the masking algorithm.
"""

from __future__ import annotations

import dataclasses

import grain.python as grain
import numpy as np

from albertprep.core import records

FEATURE_NAMES = records.FEATURE_NAMES  # re-exported: the loader's batches hold exactly these


@dataclasses.dataclass(frozen=True)
class StoredMasks(grain.MapTransform):
    """The masks the prepare job drew (static masking, as ALBERT's own data)."""

    layout: records.FeatureLayout

    def map(self, element: bytes) -> dict[str, np.ndarray]:
        return records.decode_features(element, self.layout)


@dataclasses.dataclass(frozen=True, eq=False)
class DynamicMasks(grain.RandomMapTransform):
    """Ignores the stored masks and masks the original ids again.

    `rng` is the sampler's records.rng_for(seed, epoch, record key), so each
    epoch masks an instance differently, and the same way every run.
    """

    layout: records.FeatureLayout
    config: records.MaskingConfig
    vocab: records.MaskingVocab

    def random_map(self, element: bytes, rng: np.random.Generator) -> dict[str, np.ndarray]:
        instance = records.decode(element)
        input_ids, positions, masked_ids = records.mask_instance(
            instance.original_ids(), instance.word_starts, instance.len_a, rng, self.config, self.vocab)
        remasked = records.Instance(input_ids, instance.word_starts, instance.len_a, instance.sop_label, positions,
                                    masked_ids)
        return records.to_features(remasked, self.layout)
