"""One process-wide setting of the C allocator: for the instance stage's
workers, and for any stage's worker whose environment fixes glibc's trim
threshold, as Dask's nanny does (`runners.StageFn`).

glibc's malloc gives every block over its mmap threshold (128 kB at first,
raised as blocks are freed, up to 32 MB) pages of its own from mmap and
returns them on free, so the next such block faults every page in again.
Masking a batch of 512 instances allocates dozens of arrays of 1 to 4 MB
(records.mask_flat), and that cost was a third of prepare's CPU at 512
tokens: on the reference corpus at dupe 40, 1.56 s of system time and
9.19 s of user time, against 0.47 s and 7.10 s with large blocks served from
the heap and kept there when freed. Peak RSS was the same (196 MB): the
freed blocks are reused for the next batch rather than mapped again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD = 256 << 20  # blocks up to this size come from the heap...
_TRIM_THRESHOLD = 512 << 20  # ...and this much free heap is kept before any goes back


@functools.cache
def _mallopt():
    """glibc's mallopt, or None where the C library has none (musl, macOS:
    their defaults stay)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None).mallopt
    except (OSError, AttributeError):
        return None


@functools.cache
def keep_large_blocks() -> bool:
    """Serve blocks up to 256 MB from the heap and keep freed ones, where the
    C library is glibc; elsewhere nothing changes. True when set."""
    mallopt = _mallopt()
    return mallopt is not None and bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) \
        and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def one_arena() -> bool:
    """Have every thread of this process allocate from one malloc arena,
    where the C library is glibc (elsewhere nothing changes); True when set.
    Only threads that have not allocated yet are affected, so a process
    calls it first (warm.py's zygote, whose forked workers inherit it).

    glibc gives each new thread that meets contention an arena of its own,
    up to 8 a core, and memory freed in one arena serves only the threads
    of that one. Beam's harness runs bundles on a pool of threads, so a
    worker that made instances on one thread and merged shards on another
    kept both high-water marks: at 2 GB, prepare's workers peaked at 276 MB
    against 243 MB with one arena, at the same CPU time. The workers' Python
    code holds the GIL, so one arena costs them no contention to speak of."""
    mallopt = _mallopt()
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, 1))
