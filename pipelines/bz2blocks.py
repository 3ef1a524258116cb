"""Reading a plain (single-stream) .bz2 file from the middle, block by block.

A bz2 stream is a header (`BZh1`..`BZh9`) and blocks of at most 900 kB of
input each, every block opening with the 48-bit magic 0x314159265359 and
its own CRC, at any bit offset (blocks are not byte-aligned). A block is
decoded alone by giving it a header and an end-of-stream marker whose
combined CRC, for one block, is the block's CRC. So a worker that starts
at byte N finds the first block magic at or after bit 8N and decompresses
from there, and a plain dump splits into tasks by byte ranges as a
multistream one does by streams, with no index and no planning pass.

A block belongs to the range holding the first byte of its magic. The
48-bit magic can occur by chance inside compressed data (about once in
2**48 bit positions); a block that then fails to decode is reported, not
guessed at.
"""

from __future__ import annotations

import bz2
from collections.abc import Iterator
from typing import BinaryIO

BLOCK_MAGIC = 0x314159265359
END_MAGIC = 0x177245385090
_MASK48 = (1 << 48) - 1
_READ = 1 << 18  # compressed bytes read at a time; a block at -9 is 150-250 kB of them on wikitext


def _patterns(magic: int) -> list[tuple[int, bytes, int, int, int, int]]:
    """For each bit shift k: (k, fixed middle bytes, first-byte mask and
    value, last-byte mask and value) of the magic starting at bit k."""
    patterns = []
    for k in range(8):
        window = (magic << (8 - k)).to_bytes(7, "big") if k else magic.to_bytes(6, "big") + b"\x00"
        if k == 0:
            patterns.append((0, window[:6], 0, 0, 0, 0))
            continue
        first_mask = (1 << (8 - k)) - 1
        last_mask = (0xFF << (8 - k)) & 0xFF
        patterns.append((k, window[1:6], first_mask, window[0] & first_mask, last_mask, window[6] & last_mask))
    return patterns


_BLOCK_PATTERNS = _patterns(BLOCK_MAGIC)
_END_PATTERNS = _patterns(END_MAGIC)


_SCAN = 1 << 16  # bytes searched at a time for all eight shifts of a magic


def _find(data: bytes, patterns, start_bit: int, end_bit: int = -1) -> int:
    """The first bit offset in [start_bit, end_bit) where the magic starts,
    or -1. Searched window by window: seven of the eight shifts never occur,
    and each would otherwise be searched to the end of the buffer."""
    stop = end_bit if end_bit >= 0 else len(data) * 8
    while start_bit < stop:
        window_end = min(stop, start_bit + _SCAN * 8)
        found = _find_before(data, patterns, start_bit, window_end)
        if found >= 0:
            return found
        start_bit = window_end
    return -1


def _find_before(data: bytes, patterns, start_bit: int, end_bit: int) -> int:
    """The first bit offset in [start_bit, end_bit) where the magic starts, or -1."""
    best = end_bit
    limit = min(len(data), end_bit // 8 + 7)
    for k, middle, first_mask, first_value, last_mask, last_value in patterns:
        # the middle bytes begin one byte after the magic's first byte when k > 0
        position = max(0, start_bit // 8 - 1)
        while True:
            found = data.find(middle, position, limit)
            if found < 0:
                break
            byte = found if k == 0 else found - 1
            bit = byte * 8 + k
            if bit >= best:
                break
            ok = byte >= 0 and bit >= start_bit
            if ok and k:
                ok = found + 5 < len(data) and (data[byte] & first_mask) == first_value \
                    and (data[found + 5] & last_mask) == last_value
            if ok:
                best = bit
                break
            position = found + 1
    return -1 if best == end_bit else best


def _bits(data: bytes, start_bit: int, end_bit: int) -> int:
    """The bits [start_bit, end_bit) of data as an integer."""
    first, last = start_bit // 8, (end_bit + 7) // 8
    value = int.from_bytes(data[first:last], "big")
    value >>= last * 8 - end_bit
    return value & ((1 << (end_bit - start_bit)) - 1)


def _standalone(data: bytes, level: bytes, start_bit: int, end_bit: int) -> bytes:
    """One block (its magic at start_bit, ending at end_bit) as a valid stream."""
    crc = _bits(data, start_bit + 48, start_bit + 80)
    length = end_bit - start_bit
    value = (_bits(data, start_bit, end_bit) << 80) | (END_MAGIC << 32) | crc
    total = length + 80
    padding = -total % 8
    return b"BZh" + level + (value << padding).to_bytes((total + padding) // 8, "big")


# Every block is decoded a piece at a time. A block past the range is read
# only up to its first <page>, usually a few kB in: libbz2 still undoes the
# whole Huffman and BWT stages but writes out only what is asked for (about
# 0.58 of a whole block's cost). A block in range is read whole, and in
# pieces it costs the same CPU as at once (1.63 s against 1.68 s for the
# blocks of a 54 MB dump) while every buffer after it (the page splitter's,
# the UTF-8 repair's, the XML parser's) holds 64 kB rather than 900 kB. A
# block in range is decoded to its end, where its CRC is checked, before any
# piece is passed on, so a damaged one is reported whole, never half-read.
# (indexed_bzip2 decodes a whole block at 0.78 of libbz2's user CPU, but it
# took 0.2 s more system time and 20 MB more RSS on that dump: not used.)
_PIECE = 1 << 16


def _decoded(stream: bytes) -> Iterator[bytes]:
    decompressor = bz2.BZ2Decompressor()
    piece = decompressor.decompress(stream, _PIECE)
    while True:
        if piece:
            yield piece
        if decompressor.eof:
            return
        if not piece and decompressor.needs_input:
            raise OSError("the block ends before its end-of-stream marker")
        piece = decompressor.decompress(b"", _PIECE)


class BlockError(OSError):
    """A bz2 block could not be decoded (damaged, or a false magic)."""


def iter_blocks(f: BinaryIO, start: int, end: int) -> Iterator[tuple[bool, bytes]]:
    """(in_range, decompressed bytes) of each block from the first whose
    magic begins in bytes [start, end) of the file, through the end of the
    file: blocks past `end` come with in_range False, for a reader that
    must finish the record it started. Stops early when the caller does."""
    f.seek(0)
    header = f.read(4)
    if len(header) < 4 or not header.startswith(b"BZh"):
        raise BlockError("not a bz2 file")
    level = header[3:4]
    base = max(0, start - 16)  # bytes of the file held in `data` begin here
    f.seek(base)
    data = f.read(_READ)
    bit = _find(data, _BLOCK_PATTERNS, max(start, 4) * 8 - base * 8)
    while bit < 0 and len(data) >= _READ:  # no block begins in this chunk: read on
        more = f.read(_READ)
        if not more:
            break
        keep = data[-8:]
        base += len(data) - len(keep)
        data = keep + more
        bit = _find(data, _BLOCK_PATTERNS, 0)
    first = True
    while bit >= 0:
        absolute = base * 8 + bit
        in_range = absolute < end * 8
        if first and not in_range:
            return  # no block begins in this range
        first = False
        next_bit = -1
        while True:  # the block ends where the next block or the stream's end marker begins
            following = _find(data, _BLOCK_PATTERNS, bit + 48)
            stream_end = _find(data, _END_PATTERNS, bit + 48, following)
            if following >= 0 or stream_end >= 0:
                next_bit = stream_end if stream_end >= 0 else following
                break
            more = f.read(_READ)
            if not more:
                raise BlockError(f"a bz2 block at byte {absolute // 8} has no end: the file is cut off")
            drop = bit // 8
            base += drop
            data = data[drop:] + more
            bit -= drop * 8
        try:
            pieces = _decoded(_standalone(data, level, bit, next_bit))
            for piece in list(pieces) if in_range else pieces:
                yield in_range, piece
        except (OSError, ValueError) as error:
            raise BlockError(f"the bz2 block at byte {absolute // 8} does not decode: {error}") from error
        # next block: skip an end marker (and a new stream header) if that is what follows
        if next_bit == stream_end:
            following = _find(data, _BLOCK_PATTERNS, next_bit + 48)
            while following < 0:
                more = f.read(_READ)
                if not more:
                    return
                drop = next_bit // 8
                base += drop
                data = data[drop:] + more
                next_bit -= drop * 8
                following = _find(data, _BLOCK_PATTERNS, next_bit + 48)
            next_bit = following
        drop = next_bit // 8
        if drop > _READ:  # keep the buffer bounded
            base += drop
            data = data[drop:]
            next_bit -= drop * 8
        bit = next_bit
        if len(data) - bit // 8 < 2 * _READ:
            more = f.read(_READ)
            data += more
