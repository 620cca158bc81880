"""Exact, order-independent sums of floats, so results do not depend on batching.

Floating-point addition is not associative: summing the same values in
batches of different sizes rounds differently. Winnow keeps every running sum
as two int64 columns, the integer parts and the fractional parts in units of
``2**-32``, which add exactly in any order; the float is formed only when a
result is read. Inputs are quantised to ``2**-32`` (about 2.3e-10) once.
"""

from __future__ import annotations

import numpy as np

from windows.events import Float64Array, Int64Array

FRACTION_BITS = 32
_SCALE = float(1 << FRACTION_BITS)


def split(values: Float64Array) -> tuple[Int64Array, Int64Array]:
    """Split values into exact integer parts and quantised fractional parts."""
    whole = np.floor(values)
    fraction = np.rint((values - whole) * _SCALE).astype(np.int64)
    return whole.astype(np.int64), fraction


def to_float(whole: Int64Array, fraction: Int64Array) -> Float64Array:
    """Combine exact integer and fractional sums into the nearest floats."""
    carry = fraction >> FRACTION_BITS
    remainder = fraction - (carry << FRACTION_BITS)
    return (whole + carry).astype(np.float64) + remainder.astype(np.float64) / _SCALE
