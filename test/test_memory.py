"""The monitor's allocator setting: a freed big frame goes back to the OS (glibc)."""
import os
from pathlib import Path
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parents[1]
# what a big frame does to the process: the first one freed raises glibc's mmap threshold, the
# next one is served from the heap, and the heap keeps it after free
RSS = """
import os, sys
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') >> 20
"""
PROBE = RSS + """
if sys.argv[1] == 'set':
    from leanood_ros.memory import return_big_frames
    print(return_big_frames(), file=sys.stderr)
first = bytearray(24 << 20); del first
before = rss()
frame = bytearray(24 << 20); small = bytearray(64); del frame
print(rss() - before)
"""

glibc = pytest.mark.skipif(not sys.platform.startswith('linux') or
                           os.confstr('CS_GNU_LIBC_VERSION') is None, reason='glibc only')


def probe(code: str, mode: str) -> list:
    """Run `code` in a fresh process; return what it printed, word by word."""
    out = subprocess.run([sys.executable, '-c', code, mode], capture_output=True, text=True,
                         cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)
    return out.stdout.split()


def probe_mb(code: str, mode: str) -> int:
    return int(probe(code, mode)[0])


def retained_mb(mode: str) -> int:
    return probe_mb(PROBE, mode)


@glibc
def test_a_freed_4k_frame_is_returned_to_the_os():
    assert retained_mb('default') >= 20          # the control: glibc keeps it
    assert retained_mb('set') <= 2


@glibc
def test_the_environment_wins():
    # glibc's own tunable (read at process start) is the user's choice: left alone
    from leanood_ros.memory import return_big_frames
    os.environ['MALLOC_MMAP_THRESHOLD_'] = str(64 << 20)
    try:
        assert return_big_frames() == f'MALLOC_MMAP_THRESHOLD_={64 << 20} from the environment'
    finally:
        del os.environ['MALLOC_MMAP_THRESHOLD_']


TRIM_PROBE = RSS + """
from leanood_ros.memory import return_big_frames, trim_heap
return_big_frames()
chunks = [bytearray(64 << 10) for _ in range(384)]   # 24 MB of start-up garbage on the heap
keep = bytearray(64)
del chunks
before = rss()
if sys.argv[1] == 'trim':
    assert trim_heap()
print(before - rss())
"""


def returned_mb(mode: str) -> int:
    return probe_mb(TRIM_PROBE, mode)


@glibc
def test_start_up_garbage_goes_back_to_the_os_once_trimmed():
    # the trim threshold return_big_frames sets (32 MiB) keeps frame-sized free memory: the
    # node trims once after start-up instead
    assert returned_mb('keep') <= 2
    assert returned_mb('trim') >= 20


STRAY_FRAME_PROBE = RSS + """
from leanood_ros.memory import return_big_frames, trim_heap, TrimAfterBigFrame
return_big_frames()
trim = TrimAfterBigFrame()
small, big = 640 * 480 * 3, 1920 * 1080 * 3
trimmed = [trim.after(small)]
before = rss()
copies = [b"\x01" * big for _ in range(3)]   # a stray 1080p frame's transport copies
keep = bytearray(64)
del copies
trimmed += [trim.after(big), trim.after(small)]
if sys.argv[1] == 'trim' and trimmed[-1]:
    assert trim_heap()
print(rss() - before, *trimmed)
"""


@glibc
def test_a_stray_big_frames_heap_copies_go_back_after_the_next_frame():
    # under the mmap threshold the heap keeps a 1080p frame's copies for the next one
    kept, *decisions = probe(STRAY_FRAME_PROBE, 'keep')
    assert decisions == ['False', 'False', 'True']   # trim after the small frame, not before
    assert int(kept) >= 15
    assert probe_mb(STRAY_FRAME_PROBE, 'trim') <= 2


def test_trim_only_when_a_stream_drops_from_big_frames():
    from leanood_ros.memory import TrimAfterBigFrame
    small, big = 640 * 480 * 3, 1920 * 1080 * 3
    trim = TrimAfterBigFrame()
    assert not any(trim.after(big) for _ in range(5))          # a 1080p camera: never
    assert trim.after(small)                                   # back to small frames: once
    assert not any(trim.after(small) for _ in range(5))
    assert not TrimAfterBigFrame().after(0)
    trim = TrimAfterBigFrame()
    assert not (trim.after(3 << 20) or trim.after(10))         # below 4 MiB: not worth it
    trim = TrimAfterBigFrame()
    assert not (trim.after(big) or trim.after(big // 2))       # less than 4x smaller
