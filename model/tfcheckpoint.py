"""TensorFlow checkpoints (google-research/albert's releases) read without TensorFlow.

A TF checkpoint `PREFIX` is a tensor bundle: `PREFIX.index`, a LevelDB-style
sorted table from tensor name to a `BundleEntryProto` (dtype, shape, data
shard, offset, size, masked CRC-32C), and `PREFIX.data-SSSSS-of-NNNNN`,
the tensors' raw bytes. Both are simple enough to read with NumPy, which
spares a user TensorFlow (and its pinned NumPy) just to convert ALBERT's
released weights. Every block and tensor is checked against its CRC.

The table (tensorflow/core/lib/io, LevelDB's format):

    file   = data blocks, metaindex block, index block, footer
    footer = varint handles (offset, size) of the metaindex and index
             blocks, zero padding to 40 bytes, fixed64 magic
    block  = entries, uint32 restart offsets, uint32 restart count,
             then a trailer: 1 byte compression type, masked CRC-32C
             of the block and that byte
    entry  = varint shared key bytes, varint unshared key bytes,
             varint value length, the unshared key bytes, the value

The index block maps separator keys to the data blocks' handles. The entry
under the empty key is the `BundleHeaderProto` (shard count, endianness).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator

import ml_dtypes
import numpy as np

from albertprep.core.crc32c import crc32c, masked_crc
from albertprep.core.errors import UserError
from albertprep.core.protowire import FIXED32, encode_varint, field, fields, read_varint

_MAGIC = 0xDB4775248B80FB57
_FOOTER_BYTES = 48
_TRAILER_BYTES = 5

# tensorflow/core/framework/types.proto: the numeric types a checkpoint stores as raw bytes
_DTYPES = {
    1: np.dtype(np.float32), 2: np.dtype(np.float64), 3: np.dtype(np.int32), 4: np.dtype(np.uint8),
    5: np.dtype(np.int16), 6: np.dtype(np.int8), 9: np.dtype(np.int64), 10: np.dtype(np.bool_),
    14: np.dtype(ml_dtypes.bfloat16), 17: np.dtype(np.uint16), 19: np.dtype(np.float16),
    22: np.dtype(np.uint32), 23: np.dtype(np.uint64),
}
_DTYPE_NAMES = {7: "string", 8: "complex64", 18: "complex128", 20: "resource", 21: "variant"}


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be read; the message names the file and the place."""


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lies: `dtype` is None for types stored otherwise than as raw bytes."""

    name: str
    dtype: np.dtype | None
    type_code: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    masked_crc: int
    sliced: bool


# --- the two bundle messages ------------------------------------------------------

def _shape(message: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim dim = 2 (Dim: int64 size = 1)."""
    dims = []
    for number, value in fields(message):
        if number == 2:
            size = dict(fields(value)).get(1, 0)
            dims.append(size - (1 << 64) if size >= 1 << 63 else size)  # -1: unknown
        elif number == 3 and value:
            raise ValueError("a tensor of unknown rank")
    return tuple(dims)


def _entry(name: str, message: bytes) -> TensorEntry:
    """BundleEntryProto: dtype 1, shape 2, shard_id 3, offset 4, size 5, crc32c 6, slices 7."""
    by_number = {1: 0, 2: b"", 3: 0, 4: 0, 5: 0, 6: 0}
    sliced = False
    for number, value in fields(message):
        if number == 7:
            sliced = True
        else:
            by_number[number] = value
    return TensorEntry(name=name, dtype=_DTYPES.get(by_number[1]), type_code=by_number[1],
                       shape=_shape(by_number[2]), shard=by_number[3], offset=by_number[4], size=by_number[5],
                       masked_crc=by_number[6], sliced=sliced)


# --- the sorted table --------------------------------------------------------------

def _handle(data: bytes, position: int) -> tuple[tuple[int, int], int]:
    offset, position = read_varint(data, position)
    size, position = read_varint(data, position)
    return (offset, size), position


def _block(table: bytes, handle: tuple[int, int], path: str) -> bytes:
    offset, size = handle
    end = offset + size + _TRAILER_BYTES
    if end > len(table):
        raise CheckpointError(f"{path}: block at byte {offset} ({size} bytes) runs past the end of the file "
                              f"({len(table)} bytes): truncated?")
    contents, compression = table[offset:offset + size], table[offset + size]
    stored = int.from_bytes(table[offset + size + 1:end], "little")
    if masked_crc(crc32c(table[offset:offset + size + 1])) != stored:
        raise CheckpointError(f"{path}: block at byte {offset} fails its CRC-32C: the file is damaged")
    if compression != 0:
        raise CheckpointError(f"{path}: block at byte {offset} is compressed (type {compression}); "
                              f"TensorFlow writes checkpoint indexes uncompressed, so this is not one")
    return contents


def _block_entries(contents: bytes) -> Iterator[tuple[bytes, bytes]]:
    restart_count = int.from_bytes(contents[-4:], "little")
    end = len(contents) - 4 * (restart_count + 1)  # entries are read in order: no need for the restarts
    key = b""
    position = 0
    while position < end:
        shared, position = read_varint(contents, position)
        unshared, position = read_varint(contents, position)
        value_length, position = read_varint(contents, position)
        key = key[:shared] + contents[position:position + unshared]
        position += unshared
        yield key, contents[position:position + value_length]
        position += value_length


def _table_entries(path: str) -> Iterator[tuple[bytes, bytes]]:
    with open(path, "rb") as file:
        table = file.read()
    if len(table) < _FOOTER_BYTES or int.from_bytes(table[-8:], "little") != _MAGIC:
        raise CheckpointError(f"{path}: not a TensorFlow checkpoint index (no table magic number at its end)")
    footer = table[-_FOOTER_BYTES:]
    _, position = _handle(footer, 0)  # the metaindex: nothing in it we need
    index_handle, _ = _handle(footer, position)
    try:
        for _, data_handle in _block_entries(_block(table, index_handle, path)):
            yield from _block_entries(_block(table, _handle(data_handle, 0)[0], path))
    except IndexError as error:  # a damaged footer (it has no CRC) points into the wrong bytes
        raise CheckpointError(f"{path}: malformed table ({error})") from None


# --- the bundle -----------------------------------------------------------------------

def checkpoint_prefix(path: str) -> str:
    """The bundle prefix of `path`: a prefix, its `.index` file, or a directory holding one checkpoint.

    A directory is resolved as TensorFlow does, through its `checkpoint`
    file's `model_checkpoint_path` (taken by its base name inside the
    directory when the recorded path, often another machine's, is not
    there), or else by its only `.index` file.
    """
    path = os.fspath(path)
    if path.endswith(".index"):
        path = path[: -len(".index")]
    if os.path.isdir(path):
        state = os.path.join(path, "checkpoint")
        if os.path.exists(state):
            with open(state, encoding="utf-8") as file:
                for line in file:
                    key, _, value = line.partition(":")
                    if key.strip() == "model_checkpoint_path":
                        recorded = value.strip().strip('"')
                        for candidate in (os.path.join(path, recorded), os.path.join(path, os.path.basename(recorded))):
                            if os.path.exists(candidate + ".index"):
                                return candidate
        indexes = sorted(name for name in os.listdir(path) if name.endswith(".index"))
        if len(indexes) != 1:
            raise CheckpointError(f"{path}: expected one checkpoint (*.index) or a `checkpoint` file, "
                                  f"found {indexes or 'none'}")
        return os.path.join(path, indexes[0][: -len(".index")])
    if not os.path.exists(path + ".index"):
        raise CheckpointError(f"{path}.index: no such checkpoint index")
    return path


class TFCheckpoint:
    """The tensors of one TF checkpoint: `entries` by name, `read(name)` for the values."""

    def __init__(self, path: str) -> None:
        self.prefix = checkpoint_prefix(path)
        self.index_path = self.prefix + ".index"
        self.entries: dict[str, TensorEntry] = {}
        self.num_shards = 1
        self.big_endian = False
        for key, value in _table_entries(self.index_path):
            name = key.decode("utf-8", errors="replace")
            try:
                if not key:  # BundleHeaderProto: num_shards 1, endianness 2 (BIG = 1)
                    header = dict(fields(value))
                    self.num_shards, self.big_endian = header.get(1, 1), header.get(2, 0) == 1
                else:
                    self.entries[name] = _entry(name, value)
            except (ValueError, IndexError) as error:
                raise CheckpointError(f"{self.index_path}: entry {name!r}: malformed ({error})") from None

    def data_path(self, shard: int) -> str:
        return f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}"

    def read(self, name: str, verify: bool = True) -> np.ndarray:
        """One tensor as a writable array; `verify` checks its CRC-32C (about 0.4 s for 50 MB)."""
        if name not in self.entries:
            raise KeyError(f"{self.index_path}: no tensor {name!r}")
        entry = self.entries[name]
        where = f"{self.index_path}: tensor {name!r}"
        if entry.sliced:
            raise CheckpointError(f"{where} is a partitioned variable, which is not supported")
        if entry.dtype is None:
            kind = _DTYPE_NAMES.get(entry.type_code, f"type {entry.type_code}")
            raise CheckpointError(f"{where} holds {kind} values, which are not stored as raw numbers")
        if any(dim < 0 for dim in entry.shape):
            raise CheckpointError(f"{where} has an unknown dimension in {entry.shape}")
        expected = int(np.prod(entry.shape, dtype=np.int64)) * entry.dtype.itemsize
        if entry.size != expected:
            raise CheckpointError(f"{where}: {entry.size} bytes stored for {expected} ({entry.dtype} {entry.shape})")
        data_path = self.data_path(entry.shard)
        buffer = bytearray(entry.size)
        try:
            with open(data_path, "rb") as file:
                file.seek(entry.offset)
                bytes_read = file.readinto(buffer)
        except FileNotFoundError:
            raise CheckpointError(f"{data_path}: missing (the shard that holds {name!r})") from None
        if bytes_read != entry.size:
            raise CheckpointError(f"{data_path}: {name!r} at byte {entry.offset} needs {entry.size} bytes, "
                                  f"the file holds {bytes_read}: truncated")
        if verify and masked_crc(crc32c(buffer)) != entry.masked_crc:
            raise CheckpointError(f"{data_path}: {name!r} at byte {entry.offset} fails its CRC-32C: "
                                  f"the file is damaged")
        dtype = entry.dtype.newbyteorder(">") if self.big_endian else entry.dtype
        return np.frombuffer(buffer, dtype).reshape(entry.shape).astype(entry.dtype, copy=False)

    def read_all(self, names: Iterable[str] | None = None, verify: bool = True) -> dict[str, np.ndarray]:
        """`names`, or every tensor that is stored as raw numbers."""
        if names is None:
            names = [n for n, e in self.entries.items() if e.dtype is not None and not e.sliced]
        return {name: self.read(name, verify) for name in names}


# --- writing ------------------------------------------------------------------------

_RESTART_INTERVAL = 16  # LevelDB's and TensorFlow's default


def _build_block(entries: list[tuple[bytes, bytes]]) -> bytes:
    """Sorted (key, value) pairs, keys prefix-compressed, a restart point every 16."""
    out, restarts, previous = bytearray(), [], b""
    for count, (key, value) in enumerate(entries):
        shared = 0
        if count % _RESTART_INTERVAL == 0:
            restarts.append(len(out))
        else:
            limit = min(len(previous), len(key))
            while shared < limit and previous[shared] == key[shared]:
                shared += 1
        out += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
        out += key[shared:] + value
        previous = key
    restarts = restarts or [0]
    return bytes(out) + b"".join(r.to_bytes(4, "little") for r in restarts) + len(restarts).to_bytes(4, "little")


def _with_trailer(contents: bytes) -> bytes:
    """Uncompressed (type 0), then the masked CRC-32C of the contents and that byte."""
    return contents + b"\0" + masked_crc(crc32c(contents + b"\0")).to_bytes(4, "little")


def _short_successor(key: bytes) -> bytes:
    """A short key >= `key`, LevelDB's separator after the last block."""
    for position, byte in enumerate(key):
        if byte != 0xFF:
            return key[:position] + bytes([byte + 1])
    return key


def write_checkpoint(prefix: str, tensors: dict[str, np.ndarray]) -> None:
    """Writes `tensors` as a one-shard TF checkpoint (PREFIX.index and
    PREFIX.data-00000-of-00001) that TensorFlow reads as its own.

    Tensors go into the data file in the order given, the index sorted by
    name, as TensorFlow's BundleWriter lays them out; both files appear
    whole or not at all.
    """
    from albertprep.core import atomic

    codes = {dtype: code for code, dtype in _DTYPES.items()}
    entries, offset = [], 0
    with atomic.local_path(f"{prefix}.data-00000-of-00001") as temporary, open(temporary, "wb") as data:
        for name, value in tensors.items():
            array = np.asarray(value)
            if array.dtype not in codes:
                raise CheckpointError(f"{prefix}: tensor {name!r} has dtype {array.dtype}, which has no TF type here")
            raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            data.write(raw)
            shape = b"".join(field(2, field(1, dim) if dim else b"") for dim in array.shape)
            entry = (field(1, codes[array.dtype]) + field(2, shape)
                     + (field(4, offset) if offset else b"") + (field(5, len(raw)) if raw else b"")
                     + field(6, masked_crc(crc32c(raw)), FIXED32))
            entries.append((name.encode("utf-8"), entry))
            offset += len(raw)
    header = field(1, 1) + field(3, field(1, 1))  # BundleHeaderProto: num_shards 1, version {producer 1}
    entries = [(b"", header)] + sorted(entries)
    data_block = _build_block(entries)
    index_block = _build_block([(_short_successor(entries[-1][0]),
                                 encode_varint(0) + encode_varint(len(data_block)))])
    meta_block = _build_block([])
    table = _with_trailer(data_block)
    meta_at = len(table)
    table += _with_trailer(meta_block)
    index_at = len(table)
    table += _with_trailer(index_block)
    handles = (encode_varint(meta_at) + encode_varint(len(meta_block))
               + encode_varint(index_at) + encode_varint(len(index_block)))
    table += handles.ljust(_FOOTER_BYTES - 8, b"\0") + _MAGIC.to_bytes(8, "little")
    with atomic.local_path(f"{prefix}.index") as temporary, open(temporary, "wb") as index:
        index.write(table)
