"""Types of the compiled ``windows.trace_links`` (see trace_links.pyx)."""

import numpy as np
import numpy.typing as npt

def add_events(
    rows: npt.NDArray[np.int64],
    slots: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    seq: npt.NDArray[np.int64],
    origin: npt.NDArray[np.int64],
    high: npt.NDArray[np.int64],
    low: npt.NDArray[np.int64],
) -> None: ...
def merge_pairs(
    rows: npt.NDArray[np.int64], groups: npt.NDArray[np.int64], slots: npt.NDArray[np.int64], n_groups: int
) -> npt.NDArray[np.int64]: ...
def merge_ranges(
    rows: npt.NDArray[np.int64],
    sorted_slots: npt.NDArray[np.int64],
    lo: npt.NDArray[np.int64],
    hi: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]: ...
def merge_into(
    out: npt.NDArray[np.int64], rows: npt.NDArray[np.int64], groups: npt.NDArray[np.int64], slots: npt.NDArray[np.int64]
) -> None: ...
def clear(rows: npt.NDArray[np.int64], slots: npt.NDArray[np.int64]) -> None: ...
def merge_held_late(
    out: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    lo: npt.NDArray[np.int64],
    hi: npt.NDArray[np.int64],
    bounds: npt.NDArray[np.int64],
    late_times: npt.NDArray[np.int64],
    late_arrivals: npt.NDArray[np.int64],
    late_slots: npt.NDArray[np.int64],
    number: npt.NDArray[np.int64] | None = None,
) -> None: ...
