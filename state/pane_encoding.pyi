"""Types of the compiled ``state.pane_encoding`` (see pane_encoding.pyx)."""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

def put_panes(
    put: Callable[[bytes, bytes], object],
    prefix: bytes,
    starts: npt.NDArray[np.int64],
    keys: list[bytes],
    version: int,
    columns: list[npt.NDArray[np.int64] | list[bytes]],
) -> int: ...
def delete_panes(
    delete: Callable[[bytes], object], prefix: bytes, starts: npt.NDArray[np.int64], keys: list[bytes]
) -> int: ...
