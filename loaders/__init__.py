"""Grain loading of prepared ALBERT data: checked, sharded, resumable.

No Beam here: the loader imports only pipelines.records and
pipelines.tokenizer from the pipeline package.

The names below are imported when first used (PEP 562): opening a prepared
directory (`PreparedDataset`, what `export-tfrecord` and `inspect` need)
does not import Grain, which alone takes about 1.6 s to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_SOURCES = {
    "PreparedDataset": "loaders.dataset",
    "PreparedDatasetError": "loaders.dataset",
    "Shard": "loaders.dataset",
    "FEATURE_NAMES": "loaders.features",
    "AlbertIterator": "loaders.loader",
    "AlbertLoader": "loaders.loader",
    "LoaderConfig": "loaders.loader",
    "batch_digest": "loaders.loader",
    "place_batch": "loaders.placement",
    "IncompatibleStateError": "loaders.state",
    "read_state_file": "loaders.state",
    "write_state_file": "loaders.state",
}
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

if TYPE_CHECKING:
    from loaders.dataset import PreparedDataset, PreparedDatasetError, Shard
    from loaders.features import FEATURE_NAMES
    from loaders.loader import AlbertIterator, AlbertLoader, LoaderConfig, batch_digest
    from loaders.placement import place_batch
    from loaders.state import IncompatibleStateError, read_state_file, write_state_file


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module 'loaders' has no attribute {name!r}")
    value = getattr(importlib.import_module(_SOURCES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
