"""Types of the compiled ``windows.sliding_points`` (see sliding_points.pyx)."""

import numpy as np
import numpy.typing as npt

_Int64 = npt.NDArray[np.int64]

def locate(point_keys: _Int64, point_times: _Int64, keys: _Int64, times: _Int64, right: bool = False) -> _Int64: ...
def merge(
    keys: _Int64, times: _Int64, slots: _Int64, new_keys: _Int64, new_times: _Int64, new_slots: _Int64
) -> tuple[_Int64, _Int64, _Int64]: ...
def closing(
    keys: _Int64,
    times: _Int64,
    select_keys: _Int64 | None,
    uptos: _Int64,
    closed_upto: int,
    exp_keys: _Int64,
    exp_times: _Int64,
    size: int,
    grace: int,
    late_keys: _Int64 | None = None,
    late_times: _Int64 | None = None,
    late_arrivals: _Int64 | None = None,
) -> tuple[_Int64, _Int64, _Int64, _Int64, _Int64]: ...
def range_sums(per_slot: _Int64, sorted_slots: _Int64, lo: _Int64, hi: _Int64) -> _Int64: ...
def closing_late(
    keys: _Int64,
    times: _Int64,
    late_keys: _Int64,
    late_times: _Int64,
    late_arrivals: _Int64,
    select_keys: _Int64,
    uptos: _Int64,
    closed_upto: int,
    exp_keys: _Int64,
    exp_times: _Int64,
    size: int,
    grace: int,
    hiding_only: bool = False,
) -> tuple[_Int64, _Int64, _Int64, _Int64, _Int64, _Int64, _Int64, _Int64]: ...
def tick_groups(
    ticks: _Int64, keys: _Int64, newest: _Int64, kept: npt.NDArray[np.uint8]
) -> tuple[_Int64, _Int64, _Int64]: ...
def running_max(keys: _Int64, values: _Int64, initial: _Int64) -> _Int64: ...
def late_held(
    late_keys: _Int64, late_times: _Int64, keys: _Int64, starts: _Int64, ends: _Int64
) -> tuple[_Int64, _Int64]: ...
def late_pairs(
    lo: _Int64, hi: _Int64, bounds: _Int64, late_times: _Int64, late_arrivals: _Int64, late_slots: _Int64
) -> tuple[_Int64, _Int64, _Int64]: ...
def add_late_sums(
    sums: _Int64, per_slot: _Int64, lo: _Int64, hi: _Int64, bounds: _Int64, late_arrivals: _Int64, late_slots: _Int64
) -> None: ...
