"""Grain loading of prepared ALBERT data: checked, sharded, resumable.

No Beam here: the loader imports only `albertprep.core`.

The names below are imported when first used (PEP 562): opening a prepared
directory (`PreparedDataset`, what `export-tfrecord` and `inspect` need)
does not import Grain, which alone takes about 1.6 s to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_SOURCES = {
    "PreparedDataset": "albertprep.loaders.dataset",
    "PreparedDatasetError": "albertprep.loaders.dataset",
    "Shard": "albertprep.loaders.dataset",
    "FEATURE_NAMES": "albertprep.loaders.features",
    "AlbertIterator": "albertprep.loaders.loader",
    "AlbertLoader": "albertprep.loaders.loader",
    "LoaderConfig": "albertprep.loaders.loader",
    "batch_digest": "albertprep.loaders.loader",
    "place_batch": "albertprep.loaders.placement",
    "IncompatibleStateError": "albertprep.loaders.state",
    "read_state_file": "albertprep.loaders.state",
    "write_state_file": "albertprep.loaders.state",
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
    from albertprep.loaders.dataset import PreparedDataset, PreparedDatasetError, Shard
    from albertprep.loaders.features import FEATURE_NAMES
    from albertprep.loaders.loader import AlbertIterator, AlbertLoader, LoaderConfig, batch_digest
    from albertprep.loaders.placement import place_batch
    from albertprep.loaders.state import IncompatibleStateError, read_state_file, write_state_file


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module 'albertprep.loaders' has no attribute {name!r}")
    value = getattr(importlib.import_module(_SOURCES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
