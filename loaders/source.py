"""The shards of one split as a Grain data source, opened lazily.

Grain 0.2.18's ArrayRecordDataSource opens every file to count its records
unless each path carries a `path[start:end]` read instruction; the manifest
has the counts, so no file is opened until a record is read from it.
"""

from __future__ import annotations

import hashlib

import grain.python as grain

from albertprep.loaders.dataset import PreparedDataset


class PreparedShardsSource(grain.ArrayRecordDataSource):
    """Record key k is the k-th record of the shards in manifest order.

    Grain validates a restored iterator state against `repr(data_source)`.
    The stock repr hashes the file paths, so moving the data (to a local
    disk, another bucket) would invalidate every checkpoint; this one names
    the shards by their sha256 and record counts instead.
    """

    def __init__(self, dataset: PreparedDataset):
        shards = [shard for shard in dataset.shards if shard.records]  # an empty shard has nothing to read
        super().__init__([f"{shard.path}[0:{shard.records}]" for shard in shards])
        self._identity = shard_list_digest(dataset)
        self._shard_count = len(shards)

    def __repr__(self) -> str:
        return (f"PreparedShardsSource(records={len(self)}, shards={self._shard_count}, "
                f"shard_list_sha256={self._identity})")


def shard_list_digest(dataset: PreparedDataset) -> str:
    """One sha256 for the ordered (records, sha256) of every shard of the split."""
    digest = hashlib.sha256()
    for shard in dataset.shards:
        digest.update(f"{shard.records}:{shard.sha256}\n".encode())
    return digest.hexdigest()
