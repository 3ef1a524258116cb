"""CRC-32C (Castagnoli): the checksum of TFRecord framing and of TF checkpoints.

Pure Python and NumPy, so that writing TFRecords and reading TF checkpoints
need neither TensorFlow nor a compiled CRC package. Three paths:
`crc32c` for one short message, `crc32c_many` for a batch of records, and
`crc32c` of a long buffer (a checkpoint's tensor), which is cut into
chunks, checksummed as a batch and stitched back together (`_zeros`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

_POLYNOMIAL = 0x82F63B78  # Castagnoli, bit-reversed
_MASK_DELTA = 0xA282EAD8
_UINT32 = 0xFFFFFFFF


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_POLYNOMIAL if crc & 1 else 0)
        table.append(crc)
    return table


_TABLE = _crc_table()
_TABLE_NP = np.array(_TABLE, np.uint32)


def crc32c(data: bytes | memoryview) -> int:
    """CRC-32C (Castagnoli) of `data`.

    Table-driven, one byte at a time, for short messages; a long buffer goes
    through `crc32c_many` in chunks (a 50 MB tensor in about 0.4 s,
    where a byte at a time takes 3.5 s).
    """
    data = memoryview(data).cast("B")
    if len(data) >= _LONG:
        return _crc32c_long(data)
    crc = _UINT32
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _UINT32


@functools.cache
def _word_tables() -> tuple[np.ndarray, np.ndarray]:
    """Slicing-by-4 in two halves: the register after 4 zero bytes, from its low and from its high 16 bits.

    The step is linear, so F(x) = low[x & 0xFFFF] ^ high[x >> 16]: two
    lookups advance a register by 4 bytes (2 × 256 KiB, built on first use).
    """
    def four_zero_bytes(register: np.ndarray) -> np.ndarray:
        for _ in range(4):
            register = _TABLE_NP[register & 0xFF] ^ (register >> 8)
        return register

    halves = np.arange(1 << 16, dtype=np.uint32)
    return four_zero_bytes(halves), four_zero_bytes(halves << 16)


def crc32c_many(messages: Sequence[bytes]) -> np.ndarray:
    """CRC-32C of each message (uint32 array), vectorised across messages.

    Pure Python costs ~0.07 µs a byte; this is over ten times faster on a
    batch of a thousand records. Messages are right-aligned in a zero-padded
    matrix of 4-byte words: leading zero bytes leave a zero register
    unchanged, and starting the register at 0xFFFFFFFF is the same as XORing
    that into a message's first 4 bytes, so every row starts from zero and
    each NumPy step advances all messages by one word. Messages shorter
    than 4 bytes, and batches too small to pay for NumPy, take `crc32c`.
    """
    count = len(messages)
    lengths = np.fromiter(map(len, messages), np.int64, count)
    result = np.zeros(count, np.uint32)
    vector = lengths >= 4 if count >= 8 else np.zeros(count, bool)
    for index in np.flatnonzero(~vector):
        result[index] = crc32c(messages[index])
    if not vector.any():
        return result
    chosen = np.flatnonzero(vector)
    rows = len(chosen)
    widths = lengths[chosen]
    width = -(-int(widths.max()) // 4) * 4
    data = np.frombuffer(b"".join(messages[i] for i in chosen), np.uint8)
    starts = np.arange(rows, dtype=np.int64) * width + (width - widths)  # flat index of each first byte
    offsets = np.concatenate([[0], np.cumsum(widths)[:-1]])  # of each message in `data`
    matrix = np.zeros(rows * width, np.uint8)
    matrix[np.repeat(starts - offsets, widths) + np.arange(len(data))] = data
    matrix[(starts[:, None] + np.arange(4)).ravel()] ^= 0xFF
    words = np.ascontiguousarray(matrix.view("<u4").reshape(rows, width // 4).T)
    low, high = _word_tables()
    crc = np.zeros(rows, np.uint32)
    for word in words:
        crc ^= word
        crc = low[crc & 0xFFFF] ^ high[crc >> 16]
    result[chosen] = crc ^ np.uint32(_UINT32)
    return result


def masked_crc(crc: int) -> int:
    """TFRecord and TF checkpoints store CRCs rotated and offset, as CRCs of CRCs are weak."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _UINT32


def masked_crcs(crcs: np.ndarray) -> np.ndarray:
    """`masked_crc` of each of a uint32 array (wrapping arithmetic does the `& _UINT32`)."""
    return ((crcs >> np.uint32(15)) | (crcs << np.uint32(17))) + np.uint32(_MASK_DELTA)


# --- long buffers ---------------------------------------------------------------

_CHUNK = 1 << 12  # bytes a row of `crc32c_many`'s matrix (measured fastest)
_CHUNKS_AT_ONCE = 4096  # rows a batch: 16 MiB of matrix
_LONG = 1 << 20  # from here on the chunked path beats a byte at a time


def _apply(columns: tuple[int, ...], register: int) -> int:
    """A linear map of 32-bit registers over GF(2), given as its 32 columns."""
    out = 0
    bit = 0
    while register:
        if register & 1:
            out ^= columns[bit]
        register >>= 1
        bit += 1
    return out


@functools.cache
def _zeros(length: int) -> tuple[int, ...]:
    """The map that advances a register over `length` zero bytes, by squaring.

    It is what makes CRCs stitchable: crc(A + B) = zeros(len B)(crc(A)) ^ crc(B)
    for standard (pre- and post-inverted) CRCs, since the inversions cancel.
    """
    one_byte = tuple(_TABLE[(1 << bit) & 0xFF] ^ ((1 << bit) >> 8) for bit in range(32))
    result = tuple(1 << bit for bit in range(32))  # identity
    power = one_byte
    while length:
        if length & 1:
            result = tuple(_apply(power, column) for column in result)
        length >>= 1
        if length:
            power = tuple(_apply(power, column) for column in power)
    return result


def _crc32c_long(data: memoryview) -> int:
    """Batches of equal chunks through `crc32c_many`, folded left to right."""
    crc = None
    for batch_start in range(0, len(data), _CHUNK * _CHUNKS_AT_ONCE):
        batch_end = min(batch_start + _CHUNK * _CHUNKS_AT_ONCE, len(data))
        chunks = [data[i:min(i + _CHUNK, batch_end)].tobytes() for i in range(batch_start, batch_end, _CHUNK)]
        for chunk, chunk_crc in zip(chunks, crc32c_many(chunks).tolist()):
            crc = chunk_crc if crc is None else _apply(_zeros(len(chunk)), crc) ^ chunk_crc
    return crc
