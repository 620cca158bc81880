"""Types of the compiled ``windows.sketch_counts`` (see sketch_counts.pyx)."""

import numpy as np
import numpy.typing as npt

def add_codes(
    buckets: list[dict[int, int] | None], slots: npt.NDArray[np.int64], codes: npt.NDArray[np.int64]
) -> None: ...
def merge_counts(
    buckets: list[dict[int, int] | None], groups: npt.NDArray[np.int64], slots: npt.NDArray[np.int64], n_groups: int
) -> list[dict[int, int]]: ...
def quantiles(merged: list[dict[int, int]], q: float) -> npt.NDArray[np.float64]: ...
