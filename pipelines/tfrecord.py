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

from pipelines import atomic, records
from pipelines.crc32c import crc32c, crc32c_many, masked_crc, masked_crcs
from pipelines.protowire import field

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
    if values.size == 0:
        return b""
    unsigned = values.astype(np.int64, copy=False).view(np.uint64)
    groups = (unsigned[:, None] >> _VARINT_SHIFTS) & np.uint64(0x7F)  # [n, 10], least significant first
    nonzero = groups != 0
    length = np.where(nonzero.any(axis=1), 10 - np.argmax(nonzero[:, ::-1], axis=1), 1)
    position = np.arange(10)
    continued = position < (length - 1)[:, None]
    encoded = (groups.astype(np.uint8) | np.where(continued, 0x80, 0).astype(np.uint8))
    return encoded[position < length[:, None]].tobytes()


def _packed(payload: bytes) -> bytes:
    """Field 1 of a list message; proto3 leaves out an empty repeated field."""
    return field(1, payload) if payload else b""


def _feature(value: np.ndarray | Sequence | int | float | bytes) -> bytes:
    array = np.asarray(value)
    if array.ndim != 1:
        array = array.reshape(-1)  # tf.train.Feature lists are flat; TF reads [a, b] shapes row-major
    kind = array.dtype.kind
    if kind in "biu":
        return field(3, _packed(_varints(array.astype(np.int64))))
    if kind == "f":
        return field(2, _packed(array.astype("<f4").tobytes()))
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


def albert_example(instance_features: Mapping[str, np.ndarray]) -> bytes:
    """The tf.train.Example that google-research/albert's run_pretraining.py reads.

    Takes `records.to_features`' dict; the names change to ALBERT's
    (sentence_order_label → next_sentence_labels, a list of one), ints are
    int64 and masked_lm_weights float, whatever the input dtypes.
    """
    missing = ALBERT_FEATURES.keys() - instance_features.keys()
    unknown = instance_features.keys() - ALBERT_FEATURES.keys()
    if missing or unknown:
        raise ValueError(f"not ALBERT's instance features: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return encode_example({
        ALBERT_FEATURES[name]: np.asarray(value, np.float32 if name in _FLOAT_FEATURES else np.int64).reshape(-1)
        for name, value in instance_features.items()
    })


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

    Appears whole or not at all (pipelines/atomic.py).
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


def _shard_examples(reader: ArrayRecordReader, count: int, layout: records.FeatureLayout) -> Iterator[bytes]:
    for begin in range(0, count, _READ_CHUNK):
        for record in reader.read(begin, min(begin + _READ_CHUNK, count)):
            yield albert_example(records.to_features(records.decode(record), layout))


def export(directory: str, output_dir: str, split: str = "train") -> list[str]:
    """Writes each ArrayRecord shard of a prepared directory's `split` as a TFRecord file.

    One file per shard, named after it (train-00000-of-00004.array_record →
    train-00000-of-00004.tfrecord), so shards map one to one and can be
    converted in parallel. The directory is opened as the loader opens it
    (COMPLETED marker, format versions, every shard's sha256) before anything
    is written. Returns the paths, in shard order.
    """
    from loaders.dataset import PreparedDataset

    dataset = PreparedDataset.open(directory, split=split)
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for shard in dataset.shards:
        target = os.path.join(output_dir, os.path.splitext(shard.file)[0] + SUFFIX)
        reader = ArrayRecordReader(shard.path)
        try:
            written = write_tfrecord(target, _shard_examples(reader, shard.records, dataset.layout))
        finally:
            reader.close()
        if written != shard.records:
            raise ValueError(f"{target}: wrote {written} records of {shard.records}")
        paths.append(target)
    return paths
