"""Opening a prepared directory: what it holds, refused unless it is whole.

The prepare job writes shards, then `manifest.json`, then `COMPLETED`; a
directory without the marker is a job that died or is still running. The
manifest carries each shard's record count, size and sha256, so opening
reads no shard except to check its checksum (on by default), and a training
job never starts on data that differs from what the manifest describes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import os

from albertprep.core import manifest as manifest_module
from albertprep.core import records
from albertprep.core.errors import UserError
from albertprep.core.layout import COMPLETED, MANIFEST, sha256_file
from albertprep.core.manifest import Manifest
from albertprep.core.tokenizer import Tokenizer

_HASH_THREADS = 8


class PreparedDatasetError(UserError, ValueError):
    """A directory the loader refuses; the message names the directory and what is wrong."""


@dataclasses.dataclass(frozen=True)
class Shard:
    """One ArrayRecord file as the manifest describes it."""

    file: str  # name inside the directory
    path: str
    records: int
    sha256: str
    bytes: int


@dataclasses.dataclass(frozen=True)
class PreparedDataset:
    """One split of a checked prepared directory."""

    directory: str
    split: str
    shards: tuple[Shard, ...]
    layout: records.FeatureLayout
    masking: records.MaskingConfig  # what the stored masks were made with
    tokenizer_path: str
    tokenizer_sha256: str
    do_lower_case: bool
    manifest: Manifest = dataclasses.field(compare=False, repr=False)

    @property
    def num_records(self) -> int:
        return sum(shard.records for shard in self.shards)

    @classmethod
    def open(cls, directory: str | os.PathLike, split: str = "train", verify_checksums: bool = True) -> PreparedDataset:
        """Checks the directory and returns the split; raises PreparedDatasetError.

        `verify_checksums=False` skips hashing the shards (their existence and
        sizes are still checked), for very large data already verified once.
        """
        directory = os.fspath(directory)
        dataset = _from_manifest(directory, split, _read_manifest(directory))
        for shard in dataset.shards:
            _check_shard_size(directory, shard)
        if verify_checksums:
            _check_checksums(directory, dataset.shards)
        return dataset

    def masking_vocab(self) -> records.MaskingVocab:
        """[MASK] and the random-replacement ids, from the directory's own
        SentencePiece model (checked against the manifest's sha256)."""
        try:
            with open(self.tokenizer_path, "rb") as f:
                model = f.read()
        except OSError as error:
            raise PreparedDatasetError(f"{self.directory}: incomplete: cannot read the tokenizer: {error}") from error
        digest = hashlib.sha256(model).hexdigest()
        if digest != self.tokenizer_sha256:
            raise PreparedDatasetError(f"{self.directory}: corrupt: {os.path.basename(self.tokenizer_path)} has sha256 "
                                       f"{digest}, the manifest says {self.tokenizer_sha256}")
        return Tokenizer(model, self.do_lower_case).masking_vocab()


def _read_manifest(directory: str) -> Manifest:
    if not os.path.isdir(directory):
        raise PreparedDatasetError(f"{directory}: no such directory")
    if not os.path.exists(os.path.join(directory, COMPLETED)):
        raise PreparedDatasetError(f"{directory}: incomplete: no {COMPLETED} marker (the prepare job did not "
                                   "finish, or is still running)")
    try:
        with open(os.path.join(directory, MANIFEST), "rb") as f:
            data = f.read()
    except FileNotFoundError as error:
        raise PreparedDatasetError(f"{directory}: incomplete: {COMPLETED} but no {MANIFEST}") from error
    except OSError as error:
        raise PreparedDatasetError(f"{directory}: cannot read {MANIFEST}: {error.strerror or error}") from error
    try:
        return manifest_module.decode(data, directory)
    except manifest_module.ManifestError as error:
        raise PreparedDatasetError(str(error)) from error


def _from_manifest(directory: str, split: str, manifest: Manifest) -> PreparedDataset:
    if split not in manifest.splits:
        raise PreparedDatasetError(f"{directory}: no split {split!r} (the manifest has "
                                   f"{', '.join(sorted(manifest.splits))})")
    described = manifest.splits[split]
    if not described.records:
        raise PreparedDatasetError(f"{directory}: split {split!r} has no records")
    return PreparedDataset(
        directory=directory,
        split=split,
        shards=tuple(Shard(file=s.file, path=os.path.join(directory, s.file), records=s.records, sha256=s.sha256,
                           bytes=s.bytes) for s in described.shards),
        layout=manifest.layout,
        masking=manifest.masking,
        tokenizer_path=os.path.join(directory, manifest.tokenizer.file),
        tokenizer_sha256=manifest.tokenizer.sha256,
        do_lower_case=manifest.tokenizer.do_lower_case,
        manifest=manifest,
    )


def _check_shard_size(directory: str, shard: Shard) -> None:
    try:
        size = os.path.getsize(shard.path)
    except FileNotFoundError as error:
        raise PreparedDatasetError(f"{directory}: incomplete: shard {shard.file} is missing") from error
    if size != shard.bytes:
        raise PreparedDatasetError(f"{directory}: corrupt: shard {shard.file} has {size} bytes, "
                                   f"the manifest says {shard.bytes}")


def _check_checksums(directory: str, shards: tuple[Shard, ...]) -> None:
    with concurrent.futures.ThreadPoolExecutor(min(_HASH_THREADS, len(shards))) as pool:
        digests = list(pool.map(sha256_file, [shard.path for shard in shards]))
    for shard, digest in zip(shards, digests):
        if digest != shard.sha256:
            raise PreparedDatasetError(f"{directory}: corrupt: shard {shard.file} has sha256 {digest}, "
                                       f"the manifest says {shard.sha256}")
