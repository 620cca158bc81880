"""Where the engine keeps panes it has dropped from memory, and reads them back.

The engine holds only part of its pane state in memory: panes already written
to the state store may be dropped (evicted) and are read back when an event
touches them, when an update needs them, or when their window closes. The
engine stays free of I/O; the state store implements this protocol.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from windows.events import Int64Array


class PaneStore(Protocol):
    """Stored pane state of one partition, addressed by window index, pane start and key id."""

    def fetch(self, window: int, key_ids: Int64Array, panes: Int64Array) -> tuple[Int64Array, list[list[object]]]:
        """Positions (into the inputs) of the panes that are stored, and their column states."""

    def scan(
        self, window: int, low: int, high: int, key_ids: Int64Array | None = None
    ) -> Iterator[tuple[Int64Array, Int64Array, list[list[object]]]]:
        """Every stored pane of ``window`` starting in ``[low, high)`` (of ``key_ids`` only, when given), in
        (pane start, key) order and in chunks of a bounded size: key ids, pane starts and column states of
        each chunk. A window closing over evicted state reads it back one chunk at a time, so the decoded
        form of every pane is never held at once."""

    def bounds(self, window: int) -> tuple[int, int] | None:
        """The first and last stored pane start of ``window``, or None when it has no stored pane."""
