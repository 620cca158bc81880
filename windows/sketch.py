"""A mergeable quantile sketch with a fixed relative error (DDSketch's log mapping).

A value ``x`` falls in bucket ``ceil(log_gamma(|x|))``; every value in a bucket
is within ``RELATIVE_ACCURACY`` of the bucket's representative value, so a
quantile read from the bucket counts is within that relative error of the true
order statistic. Buckets of two sketches merge by adding counts, which is what
lets panes combine into windows. Buckets are encoded as one signed integer
whose order is the order of the values it holds: 0 for zero, ``+(i + OFFSET)``
for positive values and ``-(i + OFFSET)`` for negative ones.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

#: Guaranteed relative error of every percentile Winnow reports.
RELATIVE_ACCURACY = 0.01
GAMMA = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
#: Magnitudes below this are treated as this value (bucket index about -2072).
MIN_MAGNITUDE = 1e-9
_MIN_INDEX = math.ceil(math.log(MIN_MAGNITUDE) / _LOG_GAMMA)
OFFSET = 1 - _MIN_INDEX  # makes every encoded index of a non-zero value >= 1


def bucket_codes(values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Encode each value as its bucket code (order-preserving, see module docs)."""
    magnitude = np.maximum(np.abs(values), MIN_MAGNITUDE)
    index = np.ceil(np.log(magnitude) / _LOG_GAMMA).astype(np.int64) + OFFSET
    codes = np.where(values > 0, index, -index)
    return np.where(values == 0, 0, codes).astype(np.int64)


def bucket_value(code: int) -> float:
    """Representative value of a bucket: within the relative accuracy of all its members."""
    if code == 0:
        return 0.0
    index = abs(code) - OFFSET
    value = 2.0 * GAMMA**index / (GAMMA + 1.0)
    return value if code > 0 else -value


def quantile(buckets: dict[int, int], q: float) -> float | None:
    """The ``q``-quantile (nearest rank) of the values counted in ``buckets``; None if empty."""
    total = sum(buckets.values())
    if total == 0:
        return None
    rank = max(math.ceil(q * total) - 1, 0)  # 0-based rank of the order statistic
    seen = 0
    for code in sorted(buckets):
        seen += buckets[code]
        if seen > rank:
            return bucket_value(code)
    return bucket_value(max(buckets))
