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


def _probe(script: str, mode: str) -> int:
    """What `script` prints, run in a fresh process with `mode` as its argument."""
    done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_large_block_is_reused_without_faulting_its_pages_again():
    """Ten batches of twelve 4 MB arrays. By default glibc maps each block
    afresh or, once its threshold has risen, hands the freed heap back to the
    system (its trim threshold follows the mmap one), so the batches fault
    in about half of their 122,880 pages again (61,272 here); with
    keep_large_blocks the heap keeps them (0 here)."""
    default, kept = _probe(_PROBE, "default"), _probe(_PROBE, "set")
    assert default > 20_000, default
    assert kept < default / 20, (kept, default)


_ARENA_PROBE = textwrap.dedent("""
    import sys, threading
    from albertprep.core import malloc
    if sys.argv[1] == "set":
        assert malloc.one_arena()
    assert malloc.keep_large_blocks()  # as a prepare worker: freed heap is kept
    def rss_mb():
        return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
    release = threading.Event()
    def work(hold):  # 50 MB of heap blocks, every page written, then freed
        blocks = [bytearray(64 << 10) for _ in range(800)]
        del blocks
        if hold:  # alive, as a thread of the harness's pool stays
            release.wait()
    first = threading.Thread(target=work, args=(True,))
    first.start()
    while first.is_alive() and threading.active_count() < 2:
        pass
    import time; time.sleep(0.2)
    before = rss_mb()
    second = threading.Thread(target=work, args=(False,))
    second.start(); second.join()
    print(rss_mb() - before)
    release.set(); first.join()
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_with_one_arena_a_second_thread_reuses_what_the_first_freed():
    """Two live threads, as in Beam's harness: the second allocates what the
    first freed. With an arena per thread the process grows by the whole
    50 MB again (50 here); with one arena it reuses the freed heap (0 here)."""
    assert _probe(_ARENA_PROBE, "default") >= 30
    assert _probe(_ARENA_PROBE, "set") <= 10
