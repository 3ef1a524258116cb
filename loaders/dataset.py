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
import json
import os

from pipelines import records
from pipelines.errors import UserError
from pipelines.layout import COMPLETED, MANIFEST, MANIFEST_FORMAT, sha256_file
from pipelines.tokenizer import Tokenizer

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
    manifest: dict = dataclasses.field(compare=False, repr=False)

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
        manifest = _read_manifest(directory)
        try:
            dataset = _from_manifest(directory, split, manifest)
        except PreparedDatasetError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise PreparedDatasetError(f"{directory}: corrupt {MANIFEST}: bad or missing field {error}") from error
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


def _read_manifest(directory: str) -> dict:
    if not os.path.isdir(directory):
        raise PreparedDatasetError(f"{directory}: no such directory")
    if not os.path.exists(os.path.join(directory, COMPLETED)):
        raise PreparedDatasetError(f"{directory}: incomplete: no {COMPLETED} marker (the prepare job did not "
                                   "finish, or is still running)")
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError as error:
        raise PreparedDatasetError(f"{directory}: incomplete: {COMPLETED} but no {MANIFEST}") from error
    except (OSError, ValueError) as error:
        raise PreparedDatasetError(f"{directory}: corrupt {MANIFEST}: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise PreparedDatasetError(f"{directory}: not a prepared instances directory: {MANIFEST} format is "
                                   f"{found!r}, expected {MANIFEST_FORMAT!r}")
    version = manifest.get("format_version")
    if version != records.RECORD_VERSION:
        raise PreparedDatasetError(f"{directory}: record format version {version}, this loader reads version "
                                   f"{records.RECORD_VERSION} (prepare the data again with this albertprep)")
    return manifest


def _from_manifest(directory: str, split: str, manifest: dict) -> PreparedDataset:
    splits = manifest["splits"]
    if split not in splits:
        raise PreparedDatasetError(f"{directory}: no split {split!r} (the manifest has {', '.join(sorted(splits))})")
    described = splits[split]
    shards = tuple(Shard(file=s["file"], path=os.path.join(directory, s["file"]), records=int(s["records"]),
                         sha256=str(s["sha256"]), bytes=int(s["bytes"])) for s in described["shards"])
    for shard in shards:
        if os.path.basename(shard.file) != shard.file or shard.records < 0:
            raise PreparedDatasetError(f"{directory}: corrupt {MANIFEST}: shard entry {shard.file!r}")
    if sum(s.records for s in shards) != described["records"]:
        raise PreparedDatasetError(f"{directory}: corrupt {MANIFEST}: split {split!r} says {described['records']} "
                                   f"records, its shards {sum(s.records for s in shards)}")
    if not described["records"]:
        raise PreparedDatasetError(f"{directory}: split {split!r} has no records")
    features = manifest["features"]
    masking = manifest["config"]["instances"]["masking"]
    tokenizer = manifest["tokenizer"]
    return PreparedDataset(
        directory=directory,
        split=split,
        shards=shards,
        layout=records.FeatureLayout(int(features["max_seq_length"]), int(features["max_predictions_per_seq"])),
        masking=records.MaskingConfig(int(masking["max_predictions_per_seq"]), float(masking["masked_lm_prob"]),
                                      int(masking["max_ngram"])),
        tokenizer_path=os.path.join(directory, tokenizer["file"]),
        tokenizer_sha256=str(tokenizer["sha256"]),
        do_lower_case=bool(tokenizer["normalization"]["do_lower_case"]),
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
