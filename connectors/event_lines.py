"""Raw events as spans of one buffer: how an event log's lines travel from the reader to the decoder.

An event log is read a few megabytes at a time. Splitting each read into one
``bytes`` object per line cost an allocation, a list slot and a free per
event, for lines the decoder only scans. ``EventLines`` keeps a read's text
as it is with where each event starts and ends (its line break and any
carriage returns before it left out): the decoder's C scans
(``connectors/event_scan.pyx``, ``connectors/trace_ids.pyx``) read the spans in
place, and an event becomes ``bytes`` only when it is written out (late or
rejected). Slices share the buffer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import overload

import numpy as np

from windows.events import Int64Array


class EventLines:
    """Events ``data[starts[i]:ends[i]]``; the spans are checked once, here, and cannot change after (the C
    scans read them unchecked)."""

    __slots__ = ("_data", "_ends", "_starts")

    def __init__(self, data: bytes, starts: Int64Array, ends: Int64Array) -> None:
        starts = np.ascontiguousarray(starts, dtype=np.int64)
        ends = np.ascontiguousarray(ends, dtype=np.int64)
        if starts.ndim != 1 or starts.shape != ends.shape:
            raise ValueError(f"event spans need one end per start, not {ends.shape} for {starts.shape}.")
        if starts.shape[0] and not ((starts >= 0) & (ends >= starts) & (ends <= len(data))).all():
            raise ValueError(f"event spans reach outside their {len(data)}-byte buffer or end before they start.")
        self._data = bytes(data)
        self._starts = _frozen(starts)
        self._ends = _frozen(ends)

    @property
    def data(self) -> bytes:
        return self._data

    @property
    def starts(self) -> Int64Array:
        return self._starts

    @property
    def ends(self) -> Int64Array:
        return self._ends

    @staticmethod
    def of(events: list[bytes]) -> EventLines:
        """Spans holding ``events`` (for tools and tests)."""
        lengths = np.asarray([len(event) for event in events], dtype=np.int64)
        ends = np.cumsum(lengths)
        return EventLines(b"".join(events), ends - lengths, ends)

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> EventLines: ...

    def __getitem__(self, index: int | slice) -> bytes | EventLines:
        """Event ``index`` as bytes, or a slice of the events sharing the buffer."""
        if isinstance(index, slice):
            return EventLines(self.data, self.starts[index], self.ends[index])
        return self.data[int(self.starts[index]) : int(self.ends[index])]

    def __iter__(self) -> Iterator[bytes]:
        data = self.data
        for start, end in zip(self.starts.tolist(), self.ends.tolist()):
            yield data[start:end]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventLines):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EventLines({list(self)!r})"


def spans(events: object) -> tuple[bytes, Int64Array, Int64Array]:
    """The buffer and spans of events the C scans read in place (``EventLines``, which checked them); any
    other form than those or a list of ``bytes`` is refused."""
    if not isinstance(events, EventLines):
        raise TypeError(f"events come as a list of bytes or as EventLines, not as {type(events).__name__}.")
    return events.data, events.starts, events.ends


def _frozen(array: Int64Array) -> Int64Array:
    """``array`` itself when nothing can write it (it and the array it views are read-only, as the slices
    of another ``EventLines``' spans are), else a read-only copy: a read-only view of an array someone
    else writes could still change under the C scans."""
    owner = array
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if array.flags.writeable or owner.flags.writeable:
        array = array.copy()
        array.flags.writeable = False
    return array
