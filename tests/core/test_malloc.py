"""albertprep.core.malloc: large freed blocks are reused, not mapped afresh."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from albertprep.core import malloc
    if sys.argv[1] == "set":
        assert malloc.keep_large_blocks()
    def batch():  # as a masking batch does: a dozen arrays of 4 MB alive at once, then all freed
        arrays = [np.ones(1 << 19) for _ in range(12)]  # written: every page touched
        del arrays
    batch()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        batch()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_large_block_is_reused_without_faulting_its_pages_again():
    """Ten batches of twelve 4 MB arrays. By default glibc maps each block
    afresh or, once its threshold has risen, hands the freed heap back to the
    system (its trim threshold follows the mmap one), so the batches fault
    in about half of their 122,880 pages again (61,272 here); with
    keep_large_blocks the heap keeps them (0 here)."""
    default, kept = _faults("default"), _faults("set")
    assert default > 20_000, default
    assert kept < default / 20, (kept, default)
