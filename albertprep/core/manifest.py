"""manifest.json: what a prepared directory holds. The one owner of the contract
between the instance stage (which writes it) and every reader (the loader,
inspect, the TFRecord export, pretraining, the report).

Schema, `manifest_version` 2 (a reader refuses any other version):

    format            "albertprep.instances"
    manifest_version  2: this schema
    record_version    the record codec's version (records.RECORD_VERSION)
    features          max_seq_length, max_predictions_per_seq, token_dtype
                      ("uint16" or "uint32"), fields (the seven feature names)
    masking           max_predictions_per_seq, masked_lm_prob, max_ngram: what
                      dynamic masking in the loader must redo
    albert_compat     whether the instances follow ALBERT's script (--albert-compat)
    tokenizer         file, sha256, vocab_size, source ("trained" or the model
                      path given), vocab_config (the vocabulary job's settings,
                      or null), normalization (whitespace, quotes, unicode,
                      do_lower_case)
    config            what the run was asked for, as a plain dict with its own
                      "version"; written field by field by its owner
                      (pipelines.prepare), read only by people and reports
    inputs            the corpus stage's inputs, one entry per file
    documents_files   path and bytes of every documents file read
    corpus            the corpus stage's accounting, one entry per run of it
                      (read, outcomes, documents, sentences, by_source, files)
    documents         what instance creation did with the documents
    splits            "train" and "eval": records, shards (file, records,
                      bytes, sha256, in key order) and statistics (or null
                      for an empty split)

The typed part (versions, features, masking, tokenizer, splits) is what
readers rely on and is checked on reading; the accounting blocks are kept
as plain dicts.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from albertprep.core import records
from albertprep.core.errors import UserError
from albertprep.core.layout import MANIFEST, SPLITS

FORMAT = "albertprep.instances"
VERSION = 2


class ManifestError(UserError):
    """A manifest that is missing, corrupt, or of another format or version."""


@dataclasses.dataclass(frozen=True)
class ShardEntry:
    file: str  # a name inside the prepared directory
    records: int
    bytes: int
    sha256: str

    def to_json(self) -> dict:
        return {"file": self.file, "records": self.records, "bytes": self.bytes, "sha256": self.sha256}


@dataclasses.dataclass(frozen=True)
class SplitEntry:
    shards: tuple[ShardEntry, ...]
    statistics: dict | None  # instance statistics (prepare.describe); None for an empty split

    @property
    def records(self) -> int:
        return sum(shard.records for shard in self.shards)

    def to_json(self) -> dict:
        return {"records": self.records, "shards": [s.to_json() for s in self.shards], "statistics": self.statistics}


@dataclasses.dataclass(frozen=True)
class TokenizerEntry:
    file: str
    sha256: str
    vocab_size: int
    source: str  # "trained", or the --spm-model path given
    vocab_config: dict | None
    normalization: dict  # whitespace, quotes, unicode, do_lower_case

    @property
    def do_lower_case(self) -> bool:
        return bool(self.normalization["do_lower_case"])

    @property
    def token_dtype(self) -> str:
        return "uint32" if self.vocab_size > 1 << 16 else "uint16"

    def to_json(self) -> dict:
        return {"file": self.file, "sha256": self.sha256, "vocab_size": self.vocab_size, "source": self.source,
                "vocab_config": self.vocab_config, "normalization": self.normalization}


@dataclasses.dataclass(frozen=True)
class Manifest:
    layout: records.FeatureLayout
    masking: records.MaskingConfig
    albert_compat: bool
    tokenizer: TokenizerEntry
    config: dict  # {"version": N, ...}: the writer's own versioned, plain settings
    inputs: tuple[dict, ...] = ()
    documents_files: tuple[dict, ...] = ()
    corpus: tuple[dict, ...] = ()
    documents: dict | None = None
    splits: dict[str, SplitEntry] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.config.get("version"), int):
            raise ValueError("a manifest's config must carry its own integer 'version'")

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "manifest_version": VERSION,
            "record_version": records.RECORD_VERSION,
            "features": {"max_seq_length": self.layout.max_seq_length,
                         "max_predictions_per_seq": self.layout.max_predictions_per_seq,
                         "token_dtype": self.tokenizer.token_dtype, "fields": list(records.FEATURE_NAMES)},
            "masking": dataclasses.asdict(self.masking),
            "albert_compat": self.albert_compat,
            "tokenizer": self.tokenizer.to_json(),
            "config": self.config,
            "inputs": list(self.inputs),
            "documents_files": list(self.documents_files),
            "corpus": list(self.corpus),
            "documents": self.documents,
            "splits": {name: split.to_json() for name, split in self.splits.items()},
        }

    def encode(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2) + "\n").encode("utf-8")

    @property
    def num_records(self) -> int:
        return sum(split.records for split in self.splits.values())


def decode(data: bytes, where: str) -> Manifest:
    """The manifest in `data`; `where` (the directory) opens every error message."""
    try:
        document = json.loads(data.decode("utf-8"))
    except ValueError as error:
        raise ManifestError(f"{where}: corrupt {MANIFEST}: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ManifestError(f"{where}: not a prepared instances directory: {MANIFEST} format is {found!r}, "
                            f"expected {FORMAT!r}")
    version = document.get("manifest_version", 1)  # version 1 had no field of its own
    if version != VERSION:
        raise ManifestError(f"{where}: {MANIFEST} version {version}, this albertprep reads version {VERSION} "
                            "(prepare the data again with this albertprep)")
    if document.get("record_version") != records.RECORD_VERSION:
        raise ManifestError(f"{where}: record format version {document.get('record_version')}, this albertprep "
                            f"reads version {records.RECORD_VERSION} (prepare the data again with this albertprep)")
    try:
        return _typed(document)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ManifestError(f"{where}: corrupt {MANIFEST}: bad or missing field {error}") from error


def _typed(document: dict[str, Any]) -> Manifest:
    features, masking, tokenizer = document["features"], document["masking"], document["tokenizer"]
    if list(features["fields"]) != list(records.FEATURE_NAMES):
        raise ValueError(f"features.fields {features['fields']}")
    splits = {}
    for name, split in document["splits"].items():
        if name not in SPLITS:
            raise ValueError(f"split {name!r}")
        shards = tuple(ShardEntry(str(s["file"]), int(s["records"]), int(s["bytes"]), str(s["sha256"]))
                       for s in split["shards"])
        for shard in shards:
            if os.path.basename(shard.file) != shard.file or shard.records < 0 or shard.bytes < 0:
                raise ValueError(f"shard entry {shard.file!r}")
        entry = SplitEntry(shards, split["statistics"])
        if entry.records != split["records"]:
            raise ValueError(f"split {name!r} says {split['records']} records, its shards {entry.records}")
        splits[name] = entry
    manifest = Manifest(
        layout=records.FeatureLayout(int(features["max_seq_length"]), int(features["max_predictions_per_seq"])),
        masking=records.MaskingConfig(int(masking["max_predictions_per_seq"]), float(masking["masked_lm_prob"]),
                                      int(masking["max_ngram"])),
        albert_compat=bool(document["albert_compat"]),
        tokenizer=TokenizerEntry(str(tokenizer["file"]), str(tokenizer["sha256"]), int(tokenizer["vocab_size"]),
                                 str(tokenizer["source"]), tokenizer["vocab_config"], dict(tokenizer["normalization"])),
        config=dict(document["config"]),
        inputs=tuple(document["inputs"]),
        documents_files=tuple(document["documents_files"]),
        corpus=tuple(document["corpus"]),
        documents=document["documents"],
        splits=splits,
    )
    if features["token_dtype"] != manifest.tokenizer.token_dtype:
        raise ValueError(f"features.token_dtype {features['token_dtype']!r}")
    if os.path.basename(manifest.tokenizer.file) != manifest.tokenizer.file:
        raise ValueError(f"tokenizer.file {manifest.tokenizer.file!r}")
    return manifest


def read(directory: str) -> Manifest:
    """The manifest of a local prepared directory (no check of COMPLETED or of the shards)."""
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as error:
        raise ManifestError(f"{directory}: not a prepared dataset (no {MANIFEST})") from error
    except OSError as error:
        raise ManifestError(f"{directory}: cannot read {MANIFEST}: {error.strerror or error}") from error
    return decode(data, directory)
