"""Types of the compiled ``state.pane_encoding`` (see pane_encoding.pyx)."""

import numpy as np
import numpy.typing as npt

def pane_puts(
    prefix: bytes,
    starts: npt.NDArray[np.int64],
    keys: list[bytes],
    version: int,
    columns: list[npt.NDArray[np.int64] | list[bytes]],
) -> list[tuple[bytes, bytes]]: ...
def pane_key_list(prefix: bytes, starts: npt.NDArray[np.int64], keys: list[bytes]) -> list[bytes]: ...
