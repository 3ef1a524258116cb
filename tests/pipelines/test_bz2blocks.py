"""Plain .bz2 read from any byte, block by block: every block once, in order."""

import bz2
import io

import pytest
from conftest import WIKI

from albertprep.pipelines import bz2blocks


@pytest.mark.parametrize("level", [1, 9])
def test_ranges_read_each_block_once_whatever_the_split(level):
    xml = bz2.decompress((WIKI / "enwiki-sample.xml.bz2").read_bytes())
    # two streams, as pbzip2 and cat make them
    data = bz2.compress(xml, level) + bz2.compress(b"a second stream " * 5000, level)
    whole = bz2.decompress(data)
    f = io.BytesIO(data)
    for split in (len(data), 250_000, 33_333):
        pieces = []
        for start in range(0, len(data), split):
            for in_range, block in bz2blocks.iter_blocks(f, start, min(len(data), start + split)):
                if not in_range:
                    break
                pieces.append(block)
        assert b"".join(pieces) == whole
        assert len(pieces) > 2


def test_a_cut_file_says_so():
    data = bz2.compress(bz2.decompress((WIKI / "enwiki-sample.xml.bz2").read_bytes()), 9)
    cut = io.BytesIO(data[: len(data) // 2])
    with pytest.raises(bz2blocks.BlockError, match="cut off"):
        list(bz2blocks.iter_blocks(cut, 0, len(data) // 2))


def test_a_damaged_block_in_range_is_reported_before_any_of_it_is_passed_on():
    """Blocks come out in pieces of at most 64 kB, and a block in range is
    decoded to its CRC check first: a damaged one gives nothing, not a
    damaged half."""
    data = bytearray(bz2.compress(bz2.decompress((WIKI / "enwiki-sample.xml.bz2").read_bytes()), 9))
    pieces = [piece for in_range, piece in bz2blocks.iter_blocks(io.BytesIO(bytes(data)), 0, len(data))]
    assert max(map(len, pieces)) <= 1 << 16 and len(pieces) > 90  # 6.1 MB of XML
    second = bz2blocks._find(bytes(data), bz2blocks._BLOCK_PATTERNS, 8 * 4 + 48)  # bit offset of block 2
    third = bz2blocks._find(bytes(data), bz2blocks._BLOCK_PATTERNS, second + 48)
    data[(second + third) // 16] ^= 0x10  # a byte halfway through block 2
    got = []
    with pytest.raises(bz2blocks.BlockError, match=f"block at byte {second // 8} does not decode"):
        for _, piece in bz2blocks.iter_blocks(io.BytesIO(bytes(data)), second // 8, len(data)):
            got.append(piece)
    assert got == []
