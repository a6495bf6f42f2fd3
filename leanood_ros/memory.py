"""Process memory settings of the monitor: big frames go back to the OS once they are freed.

glibc serves a large allocation by mmap and returns it on free - but after the first such free it
raises its threshold to that size (up to 32 MiB), so from then on every camera frame of a few
MB to 32 MiB (a 4K rgb8 frame is 24 MiB; the transport copies it three times before the node's
code runs) comes from the heap, and the heap keeps the pages.  A fixed threshold stops that
(benchmarks/node_4k: RSS at 4K 258 -> 187 MB).  Frames below it (1080p: 6 MiB) stay on the heap,
where re-using the same pages is cheaper than mapping fresh ones every frame.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3     # glibc <malloc.h>
MMAP_THRESHOLD = 16 << 20          # above 1080p (6 MiB) frames, below 4K (24 MiB) ones
ENV = ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_')   # glibc's own tunables win


@functools.lru_cache(maxsize=1)   # find_library runs ldconfig: once
def _libc():
    name = ctypes.util.find_library('c')
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def trim_heap() -> bool:
    """Give the heap's free pages back to the OS (after start-up; after a stray big frame).

    Return whether glibc did it.  Never per frame: the trim threshold keeps frame-sized free
    memory on purpose (`TrimAfterBigFrame` says when a trim is worth it).
    """
    trim = getattr(_libc(), 'malloc_trim', None)
    if trim is None:
        return False
    trim.argtypes, trim.restype = (ctypes.c_size_t,), ctypes.c_int
    trim(0)
    return True


class TrimAfterBigFrame:
    """Tell when to trim the heap: the first frame after one much bigger than itself.

    Frames under the mmap threshold (a 1080p one: 6 MiB) are copied on the heap, which keeps
    their pages up to the trim threshold (32 MiB) for the next frame of that size: right for a
    1080p camera, but one stray big frame among 640x480 ones left the node 23 MB larger for good
    (test_memory_under_the_largest_raw_frames).  A stream of equal frames never trims; the trim
    runs once the big frame's copies are freed (its successor judged, the frozen check holding
    the new one).  One per camera: cameras of different sizes do not set each other off.
    """

    def __init__(self, min_bytes: int = 4 << 20, ratio: float = 4.0):
        self.min_bytes, self.ratio = min_bytes, ratio
        self._previous = 0

    def after(self, nbytes: int) -> bool:
        """Record a judged frame's size; return whether to trim now."""
        previous, self._previous = self._previous, nbytes
        return previous >= self.min_bytes and nbytes * self.ratio <= previous


def return_big_frames(threshold: int = MMAP_THRESHOLD) -> str:
    """Fix glibc's mmap threshold; return what was done (for the start-up log)."""
    given = [f'{k}={os.environ[k]}' for k in ENV if k in os.environ]
    if given:
        return f'{", ".join(given)} from the environment'
    mallopt = getattr(_libc(), 'mallopt', None)
    if mallopt is None:             # not glibc (musl, macOS): its own allocator policy stays
        return 'allocator left as it is (no glibc mallopt)'
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # the trim threshold as glibc's dynamic rule would set it (2x): a fixed mmap threshold would
    # otherwise leave it at 128 KiB, and every freed 1080p frame on top of the heap would be
    # given back and faulted in again for the next one
    if mallopt(M_MMAP_THRESHOLD, int(threshold)) != 1 or \
            mallopt(M_TRIM_THRESHOLD, 2 * int(threshold)) != 1:
        return 'allocator left as it is (mallopt refused)'
    return f'allocations >= {threshold >> 20} MiB mapped and returned to the OS on free'
