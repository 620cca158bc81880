"""Types of the compiled ``windows.pane_index`` (see pane_index.pyx)."""

import numpy as np
import numpy.typing as npt

class PaneIndex:
    def __init__(self, expected: int = 0) -> None: ...
    def __len__(self) -> int: ...
    def lookup(self, keys: npt.NDArray[np.int64], panes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]: ...
    def lookup_missing(
        self, keys: npt.NDArray[np.int64], panes: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
    def insert(
        self, keys: npt.NDArray[np.int64], panes: npt.NDArray[np.int64], slots: npt.NDArray[np.int64]
    ) -> None: ...
    def remove(self, keys: npt.NDArray[np.int64], panes: npt.NDArray[np.int64]) -> None: ...
    def create(
        self,
        keys: npt.NDArray[np.int64],
        panes: npt.NDArray[np.int64],
        slots: npt.NDArray[np.int64],
        key_ids: npt.NDArray[np.int64],
        pane_of: npt.NDArray[np.int64],
        alive: npt.NDArray[np.uint8],
        stored: npt.NDArray[np.uint8],
        touched: npt.NDArray[np.int64],
        stamp: int,
    ) -> None: ...
    def add_panes(
        self,
        keys: npt.NDArray[np.int64],
        panes: npt.NDArray[np.int64],
        start: int,
        out: npt.NDArray[np.int64],
        counts: npt.NDArray[np.int64],
        free: npt.NDArray[np.int64],
        key_ids: npt.NDArray[np.int64],
        pane_of: npt.NDArray[np.int64],
        alive: npt.NDArray[np.uint8],
        stored: npt.NDArray[np.uint8],
        changed: npt.NDArray[np.uint8],
        touched: npt.NDArray[np.int64],
        position: npt.NDArray[np.int64],
        stamp: int,
    ) -> int: ...
    def release(
        self,
        slots: npt.NDArray[np.int64],
        key_ids: npt.NDArray[np.int64],
        pane_of: npt.NDArray[np.int64],
        alive: npt.NDArray[np.uint8],
        changed: npt.NDArray[np.uint8],
        stored: npt.NDArray[np.uint8],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...

def first_seen(
    slots: npt.NDArray[np.int64], mark: npt.NDArray[np.int64], position: npt.NDArray[np.int64], stamp: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
