"""Types of the compiled ``windows.pane_spans`` (see pane_spans.pyx)."""

import numpy as np
import numpy.typing as npt

def closing_pairs(
    slots: npt.NDArray[np.int64],
    pane_of: npt.NDArray[np.int64],
    key_of: npt.NDArray[np.int64],
    uptos: npt.NDArray[np.int64],
    closed_upto: int,
    by_key: npt.NDArray[np.int64],
    far_keys: npt.NDArray[np.int64],
    far_uptos: npt.NDArray[np.int64],
    size: int,
    step: int,
    grace: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
def closing_panes(
    alive: npt.NDArray[np.uint8],
    pane_of: npt.NDArray[np.int64],
    high_water: int,
    upto: int,
    closed_upto: int,
    size: int,
    step: int,
    grace: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
