"""Per-partition stream time: the largest event time seen so far, and checks against it."""

from __future__ import annotations

import numpy as np

from windows.events import Int64Array

#: Stream time of a partition that has seen no event yet.
NO_TIME = int(np.iinfo(np.int64).min)
END_OF_TIME = int(np.iinfo(np.int64).max)  # later than any time


def stream_times(ts: Int64Array, start: int) -> tuple[Int64Array, Int64Array]:
    """Stream time before and after each event: the running maximum of event time."""
    after = np.maximum.accumulate(ts)
    if start != NO_TIME:
        after = np.maximum(after, start)
    before = np.empty_like(after)
    if after.shape[0]:
        before[0] = start
        before[1:] = after[:-1]
    return before, after


def too_far_ahead(ts: Int64Array, start: int, max_ahead: int) -> np.ndarray:
    """Mask of events more than ``max_ahead`` ms ahead of the stream time they arrive at.

    Rejected events do not advance stream time, so an outlier cannot make the
    events after it late. The vectorised pass is exact when it flags nothing;
    otherwise the batch is walked event by event.
    """
    before, _ = stream_times(ts, start)
    flagged: np.ndarray = (before != NO_TIME) & (ts > before + max_ahead)
    if not flagged.any():
        return flagged
    mask = np.zeros(ts.shape[0], dtype=bool)
    current = start
    for i, t in enumerate(ts.tolist()):
        if current != NO_TIME and t > current + max_ahead:
            mask[i] = True
        elif t > current:
            current = t
    return mask
