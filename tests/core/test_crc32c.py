"""CRC-32C: known vectors, and the batch and long-buffer paths against the byte-at-a-time one."""

import numpy as np

from albertprep.core import crc32c


def _byte_at_a_time(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = crc32c._TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_vectors():
    assert crc32c.crc32c(b"123456789") == 0xE3069283
    assert crc32c.crc32c(b"") == 0
    # RFC 3720 (iSCSI), B.4
    assert crc32c.crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c.crc32c(bytes(range(32))) == 0x46DD794E


def test_crc32c_many_agrees_with_crc32c():
    rng = np.random.default_rng(7)
    lengths = [0, 1, 3, 4, 5, 9, 32, 33, 1000, *rng.integers(0, 300, 40)]
    messages = [rng.integers(0, 256, n).astype(np.uint8).tobytes() for n in lengths]
    messages += [b"123456789", bytes(range(32))]
    crcs = crc32c.crc32c_many(messages)
    assert crcs.tolist() == [crc32c.crc32c(m) for m in messages]
    assert crcs[-2:].tolist() == [0xE3069283, 0x46DD794E]


def test_long_buffers_are_stitched_from_chunks_exactly():
    """Lengths on, just off and far off the chunk and batch boundaries."""
    rng = np.random.default_rng(3)
    chunk, batch = crc32c._CHUNK, crc32c._CHUNK * crc32c._CHUNKS_AT_ONCE
    for length in [crc32c._LONG, crc32c._LONG + 1, crc32c._LONG + chunk - 1, batch, batch + 4097]:
        data = rng.integers(0, 256, length).astype(np.uint8).tobytes()
        assert crc32c.crc32c(data) == _byte_at_a_time(data), length
    assert crc32c.crc32c(bytes(crc32c._LONG)) == _byte_at_a_time(bytes(crc32c._LONG))


def test_masked_crcs_agree_with_masked_crc():
    crcs = np.array([0, 1, 0xE3069283, 0xFFFFFFFF, 0x80000000], np.uint32)
    assert crc32c.masked_crcs(crcs).tolist() == [crc32c.masked_crc(int(c)) for c in crcs]
