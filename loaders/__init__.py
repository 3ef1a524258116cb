"""Grain loading of prepared ALBERT data: checked, sharded, resumable.

No Beam here: the loader imports only pipelines.records and
pipelines.tokenizer from the pipeline package.
"""

from loaders.dataset import PreparedDataset, PreparedDatasetError, Shard
from loaders.features import FEATURE_NAMES
from loaders.loader import AlbertIterator, AlbertLoader, LoaderConfig, batch_digest
from loaders.placement import place_batch
from loaders.state import IncompatibleStateError, read_state_file, write_state_file

__all__ = [
    "FEATURE_NAMES",
    "AlbertIterator",
    "AlbertLoader",
    "IncompatibleStateError",
    "LoaderConfig",
    "PreparedDataset",
    "PreparedDatasetError",
    "Shard",
    "batch_digest",
    "place_batch",
    "read_state_file",
    "write_state_file",
]
