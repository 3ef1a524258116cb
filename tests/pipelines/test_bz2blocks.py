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
