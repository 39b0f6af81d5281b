"""Keeps the service's native heap from holding on to memory it has freed.

glibc's malloc gives each thread that allocates an arena of its own (up to eight per
core), and above a threshold that it raises by itself after big frees, it serves big
blocks from those arenas instead of mmap. A watch stream over big events allocates
megabyte-sized buffers on whichever of the many sender and reader threads runs it; once
freed they stay in that thread's arena. 16 slow streams over events of 1 MiB kept the
service at 507 to 736 MB resident this way, against 157 MB with two arenas and blocks
of 128 KiB and more always mmapped, and so returned to the system when freed
(bench/watch_memory.py, docs/security.md).

Set once, before the server starts its threads; a no-op where the C library is not
glibc (mallopt is glibc's).
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Arenas for all threads together: Python's own allocator serves the small objects, so
# malloc's lock is seldom contended.
ARENAS = 2
# Blocks at least this big are mmapped, whatever glibc learned from earlier frees.
MMAP_THRESHOLD_BYTES = 128 * 1024


def bound_native_heap() -> bool:
    """Caps malloc's arenas and fixes its mmap threshold; True when it could."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_ARENA_MAX, ARENAS)) and bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    )
