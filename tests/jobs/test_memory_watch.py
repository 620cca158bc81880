"""The memory watch's process settings: freed heap kept for reuse, handed back at pressure."""

from __future__ import annotations

import resource

from jobs.memory_governor import ProcessMemory
from jobs.memory_watch import _malloc_trim, keep_freed_heap

MIB = 2**20


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def test_a_freed_buffer_is_reused_without_page_faults() -> None:
    keep_freed_heap(16 << 30)  # a 16 GiB limit: buffers below 64 MiB come from the heap, 128 MiB of it kept
    block = bytearray(8 * MIB)  # zero-filled: every page touched
    del block
    before = faults()
    block = bytearray(8 * MIB)
    taken = faults() - before
    del block
    assert taken < 256, f"{taken} page faults for 2,048 pages the heap already held"


def test_trimming_hands_the_kept_heap_back() -> None:
    keep_freed_heap(16 << 30)
    reader = ProcessMemory()
    block = bytearray(48 * MIB)  # from the heap (below 64 MiB), every page touched
    del block
    kept = reader.usage()  # freed, and still held for reuse
    _malloc_trim()()  # what ``MemoryWatch.relieve`` does at pressure
    assert reader.usage() <= kept - 32 * MIB
