"""The columnar event batch the engine consumes."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EventBatch:
    """Decoded events of one partition in arrival order, held as columns.

    ``ts`` are epoch milliseconds, ``key_ids`` are interned key ids, ``seq`` is
    the position of each event in its source (line number or offset) and is
    used to break timestamp ties. ``numbers`` holds numeric fields with NaN
    where an event lacks the field; ``hashes`` holds stable 64-bit hashes of the
    fields counted by ``distinct``, with 0 where an event lacks the field.
    """

    ts: Int64Array
    key_ids: Int64Array
    seq: Int64Array
    numbers: Mapping[str, Float64Array] = field(default_factory=dict)
    hashes: Mapping[str, Int64Array] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_] | slice) -> EventBatch:
        """The sub-batch selected by ``index`` (positions, a mask or a slice)."""
        if isinstance(index, np.ndarray) and index.dtype.kind in "iu":  # ``take`` gathers faster than indexing
            return EventBatch(
                ts=self.ts.take(index),
                key_ids=self.key_ids.take(index),
                seq=self.seq.take(index),
                numbers={name: column.take(index) for name, column in self.numbers.items()},
                hashes={name: column.take(index) for name, column in self.hashes.items()},
            )
        return EventBatch(
            ts=self.ts[index],
            key_ids=self.key_ids[index],
            seq=self.seq[index],
            numbers={name: column[index] for name, column in self.numbers.items()},
            hashes={name: column[index] for name, column in self.hashes.items()},
        )

    def only(self, numbers: Collection[str], hashes: Collection[str]) -> EventBatch:
        """This batch with only the ``numbers`` and ``hashes`` columns named (the same arrays, not copies): the
        batches taken from it then gather no column nobody reads."""
        if all(name in numbers for name in self.numbers) and all(name in hashes for name in self.hashes):
            return self
        return EventBatch(
            ts=self.ts,
            key_ids=self.key_ids,
            seq=self.seq,
            numbers={name: column for name, column in self.numbers.items() if name in numbers},
            hashes={name: column for name, column in self.hashes.items() if name in hashes},
        )

    def rows(self, positions: Int64Array) -> EventBatch:
        """The sub-batch at ``positions``: this batch itself, not a copy, when they are all of its positions in
        order."""
        n = len(self)
        if positions.shape[0] == n and (n == 0 or _all_in_order(positions)):
            return self
        return self.take(positions)

    @staticmethod
    def empty() -> EventBatch:
        """A batch with no events."""
        nothing = np.zeros(0, dtype=np.int64)
        return EventBatch(ts=nothing, key_ids=nothing, seq=nothing)


def _all_in_order(positions: Int64Array) -> bool:
    """Whether ``positions`` (not empty) are ``0, 1, ..., len - 1``: they run from 0 to len - 1, ascending."""
    return bool(
        positions[0] == 0 and positions[-1] == positions.shape[0] - 1 and (positions[1:] > positions[:-1]).all()
    )
