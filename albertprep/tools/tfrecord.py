"""Prepared instances as TFRecord files of tf.train.Example, without TensorFlow.

google-research/albert's `run_pretraining.py` reads TFRecord files of
tf.train.Example with its own feature names. This module writes that format
byte for byte (TFRecord framing with masked CRC-32C, the Example protobuf
wire format) so that exporting needs only NumPy and ArrayRecord, not
TensorFlow or generated protobuf classes. Nothing here imports Beam.

TFRecord framing of one record:

    uint64  length of the data (little-endian)
    uint32  masked CRC-32C of those 8 length bytes
    bytes   data
    uint32  masked CRC-32C of the data

The Example messages (proto3, field numbers as in tensorflow/core/example):

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }     // entry: key = 1, value = 2
    Feature  { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed = true]; }
    Int64List { repeated int64 value = 1 [packed = true]; }
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
from array_record.python.array_record_module import ArrayRecordReader

from albertprep.core import atomic, records
from albertprep.core.crc32c import crc32c, crc32c_many, masked_crc, masked_crcs
from albertprep.core.layout import SPM_MODEL
from albertprep.core.protowire import LENGTH_DELIMITED, encode_varint, field
from albertprep.core.tokenizer import Tokenizer

SUFFIX = ".tfrecord"

# Our feature names (records.to_features) → google-research/albert's.
ALBERT_FEATURES = {
    "input_ids": "input_ids",
    "input_mask": "input_mask",
    "segment_ids": "segment_ids",
    "masked_lm_positions": "masked_lm_positions",
    "masked_lm_ids": "masked_lm_ids",
    "masked_lm_weights": "masked_lm_weights",
    # ALBERT kept BERT's name for the feature that holds its sentence-order label.
    "sentence_order_label": "next_sentence_labels",
}
_FLOAT_FEATURES = {"masked_lm_weights"}

@functools.lru_cache(maxsize=4096)
def _length_header(length: int) -> bytes:
    """The 12 bytes before a record's data; record lengths repeat, so cached."""
    encoded = length.to_bytes(8, "little")
    return encoded + masked_crc(crc32c(encoded)).to_bytes(4, "little")


# --- protobuf wire format -----------------------------------------------------

_VARINT_SHIFTS = np.arange(0, 70, 7, dtype=np.uint64)  # a 64-bit varint has at most 10 groups of 7 bits


def _varints(values: np.ndarray) -> bytes:
    """Base-128 varints of int64 values (negatives as 64-bit two's complement, 10 bytes), vectorised."""
    return _varints_and_sizes(values)[0]


def _varints_and_sizes(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The varints of `values`, and how many bytes each takes."""
    if values.size == 0:
        return b"", np.zeros(values.shape, np.int64)
    unsigned = values.astype(np.int64, copy=False).view(np.uint64)
    width = max(1, -(-int(unsigned.max()).bit_length() // 7))  # groups the largest value needs
    groups = (unsigned[:, None] >> _VARINT_SHIFTS[:width]) & np.uint64(0x7F)  # [n, width], least significant first
    nonzero = groups != 0
    length = np.where(nonzero.any(axis=1), width - np.argmax(nonzero[:, ::-1], axis=1), 1)
    position = np.arange(width)
    continued = position < (length - 1)[:, None]
    encoded = (groups.astype(np.uint8) | np.where(continued, 0x80, 0).astype(np.uint8))
    return encoded[position < length[:, None]].tobytes(), length


def _feature(value: np.ndarray | Sequence | int | float | bytes) -> bytes:
    array = np.asarray(value)
    if array.ndim != 1:
        array = array.reshape(-1)  # tf.train.Feature lists are flat; TF reads [a, b] shapes row-major
    kind = array.dtype.kind
    if kind in "biu":
        return _list_feature(3, _varints(array.astype(np.int64)))
    if kind == "f":
        return _list_feature(2, array.astype("<f4").tobytes())
    if kind in "SU" or (kind == "O" and all(isinstance(v, bytes | str) for v in array)):
        items = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in array.tolist()]
        return field(1, b"".join(field(1, item) for item in items))
    raise TypeError(f"cannot write a {array.dtype} array as a tf.train.Feature")


def encode_example(features: Mapping[str, np.ndarray]) -> bytes:
    """A serialized tf.train.Example: integer arrays → int64_list, floats → float_list.

    Byte strings (dtype S, or str) → bytes_list. Keys are written in sorted
    order, as protobuf's deterministic serialization does, so equal features
    give equal bytes.
    """
    entries = b"".join(
        field(1, field(1, key.encode("utf-8")) + field(2, _feature(features[key])))
        for key in sorted(features)
    )
    return field(1, entries)


def albert_example(instance_features: Mapping[str, np.ndarray], word_start: np.ndarray | None = None) -> bytes:
    """The tf.train.Example that google-research/albert's run_pretraining.py reads.

    Takes `records.to_features`' dict; the names change to ALBERT's
    (sentence_order_label → next_sentence_labels, a list of one), ints are
    int64 and masked_lm_weights float, whatever the input dtypes. With
    `word_start` ([vocab] bool, `Tokenizer.albert_word_start`) it also
    writes ALBERT's `token_boundary` (1 where a word unit starts, 0 on
    padding), which run_pretraining.py needs with --masked_lm_budget.
    """
    batch = {name: np.asarray(value)[None] for name, value in instance_features.items()}
    return albert_examples(batch, word_start)[0]


def albert_examples(batch: Mapping[str, np.ndarray], word_start: np.ndarray | None = None) -> list[bytes]:
    """`albert_example` of each row of a batch of features ([B, ...] each),
    encoded a feature at a time for the whole batch: the bytes are the same,
    and NumPy's cost per call is paid per batch, not per instance."""
    missing = ALBERT_FEATURES.keys() - batch.keys()
    unknown = batch.keys() - ALBERT_FEATURES.keys()
    if missing or unknown:
        raise ValueError(f"not ALBERT's instance features: missing {sorted(missing)}, unknown {sorted(unknown)}")
    rows = len(next(iter(batch.values())))
    columns = {ALBERT_FEATURES[name]: np.asarray(value).reshape(rows, -1) for name, value in batch.items()}
    if word_start is not None:  # of the original pieces, as ALBERT computes it before masking
        ids = columns["input_ids"].astype(np.int64)
        masked = columns["masked_lm_weights"] > 0
        row_index = np.nonzero(masked)[0]
        ids[row_index, columns["masked_lm_positions"][masked]] = columns["masked_lm_ids"][masked]
        columns["token_boundary"] = (word_start[ids] & (columns["input_mask"] != 0)).astype(np.int64)
    encoded = {name: (_float_rows(value) if name == "masked_lm_weights" else _int64_rows(value))
               for name, value in columns.items()}
    keys = {name: _prefix(1, len(name.encode())) + name.encode() for name in columns}
    examples = []
    for row in range(rows):
        entries = b"".join(
            _entry(keys[name], encoded[name][row]) for name in sorted(columns)
        )
        examples.append(_prefix(1, len(entries)) + entries)
    return examples


@functools.lru_cache(maxsize=8192)
def _prefix(number: int, length: int) -> bytes:
    """A length-delimited field's tag and length; lengths repeat, so cached."""
    return encode_varint(number << 3 | LENGTH_DELIMITED) + encode_varint(length)


def _entry(key_field: bytes, feature: bytes) -> bytes:
    """One map entry of Features: key = 1, value (a Feature) = 2."""
    body = key_field + _prefix(2, len(feature)) + feature
    return _prefix(1, len(body)) + body


def _list_feature(kind: int, payload: bytes) -> bytes:
    """A Feature holding a packed list (kind 2: float_list, 3: int64_list);
    proto3 leaves out an empty repeated field."""
    packed = _prefix(1, len(payload)) + payload if payload else b""
    return _prefix(kind, len(packed)) + packed


def _int64_rows(values_bl: np.ndarray) -> list[bytes]:
    """The int64_list Feature of each row, varints encoded for all rows at once."""
    data, sizes = _varints_and_sizes(values_bl.astype(np.int64).reshape(-1))
    ends = np.cumsum(sizes.reshape(values_bl.shape).sum(axis=1)).tolist()
    return [_list_feature(3, data[a:b]) for a, b in zip([0, *ends[:-1]], ends)]


def _float_rows(values_bl: np.ndarray) -> list[bytes]:
    data = values_bl.astype("<f4").tobytes()
    width = 4 * values_bl.shape[1]
    return [_list_feature(2, data[r * width:(r + 1) * width]) for r in range(values_bl.shape[0])]


# --- TFRecord files -------------------------------------------------------------

_BATCH_BYTES = 4 << 20  # bound on the padded CRC matrix of one batch
_BATCH_RECORDS = 1024  # about the fastest batch for crc32c_many


def _batches(payloads: Iterable[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    widest = 0
    for payload in payloads:
        width = max(widest, len(payload))
        if batch and ((len(batch) + 1) * width > _BATCH_BYTES or len(batch) >= _BATCH_RECORDS):
            yield batch
            batch, width = [], len(payload)
        batch.append(payload)
        widest = width
    if batch:
        yield batch


def write_tfrecord(path: str, payloads: Iterable[bytes]) -> int:
    """Writes `payloads` as one TFRecord file and returns how many.

    Appears whole or not at all (albertprep/core/atomic.py).
    """
    count = 0
    with atomic.local_path(path) as temporary:
        with open(temporary, "wb") as f:
            for batch in _batches(payloads):
                crcs = crc32c_many(batch)
                masked = masked_crcs(crcs)
                footers = masked.astype("<u4").tobytes()
                f.write(b"".join(
                    _length_header(len(payload)) + payload + footers[4 * i : 4 * i + 4]
                    for i, payload in enumerate(batch)
                ))
                count += len(batch)
    return count


def read_tfrecord(path: str) -> Iterator[bytes]:
    """The records of a TFRecord file, each checked against both of its CRCs.

    Raises ValueError naming the file and the byte offset of the first bad
    record (truncated, or a CRC that does not match); the records before it
    are yielded first.
    """
    with open(path, "rb") as f:
        offset = 0
        pending: list[tuple[int, bytes, int]] = []  # (offset, data, masked data CRC), checked in batches
        widest = 0
        while True:
            header = f.read(12)
            if not header:
                break
            if len(header) < 12:
                raise ValueError(f"{path}: truncated record header at byte offset {offset}")
            length = int.from_bytes(header[:8], "little")
            if _length_header(length) != header:
                raise ValueError(f"{path}: corrupt record length (CRC mismatch) at byte offset {offset}")
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise ValueError(f"{path}: truncated record data at byte offset {offset}")
            pending.append((offset, data, int.from_bytes(footer, "little")))
            widest = max(widest, length)
            offset += 16 + length
            if len(pending) >= _BATCH_RECORDS or len(pending) * widest >= _BATCH_BYTES:
                yield from _checked(path, pending)
                pending, widest = [], 0
        yield from _checked(path, pending)


def _checked(path: str, pending: list[tuple[int, bytes, int]]) -> Iterator[bytes]:
    crcs = crc32c_many([data for _, data, _ in pending])
    for (offset, data, expected), crc in zip(pending, crcs.tolist()):
        if masked_crc(crc) != expected:
            raise ValueError(f"{path}: corrupt record data (CRC mismatch) in the record at byte offset {offset}")
        yield data


# --- export -------------------------------------------------------------------------

_READ_CHUNK = 4096  # ArrayRecord records read at a time


def _shard_examples(reader: ArrayRecordReader, count: int, layout: records.FeatureLayout,
                    word_start: np.ndarray) -> Iterator[bytes]:
    for begin in range(0, count, _READ_CHUNK):
        features = [records.to_features(records.decode(record), layout)
                    for record in reader.read(begin, min(begin + _READ_CHUNK, count))]
        batch = {name: np.stack([f[name] for f in features]) for name in features[0]}
        yield from albert_examples(batch, word_start)


def export(directory: str, output_dir: str, split: str = "train") -> list[str]:
    """Writes each ArrayRecord shard of a prepared directory's `split` as a TFRecord file.

    One file per shard, named after it (train-00000-of-00004.array_record →
    train-00000-of-00004.tfrecord), so shards map one to one and can be
    converted in parallel. Each example carries ALBERT's `token_boundary`,
    from the directory's own spm.model. The directory is opened as the loader opens it
    (COMPLETED marker, format versions, every shard's sha256) before anything
    is written. Returns the paths, in shard order.
    """
    from albertprep.loaders.dataset import PreparedDataset

    dataset = PreparedDataset.open(directory, split=split)
    word_start = Tokenizer.from_file(os.path.join(directory, SPM_MODEL)).albert_word_start
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for shard in dataset.shards:
        target = os.path.join(output_dir, os.path.splitext(shard.file)[0] + SUFFIX)
        reader = ArrayRecordReader(shard.path)
        try:
            written = write_tfrecord(target, _shard_examples(reader, shard.records, dataset.layout, word_start))
        finally:
            reader.close()
        if written != shard.records:
            raise ValueError(f"{target}: wrote {written} records of {shard.records}")
        paths.append(target)
    return paths
