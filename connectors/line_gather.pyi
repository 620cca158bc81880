"""Types of the compiled ``connectors.line_gather`` (see line_gather.pyx)."""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from connectors.line_source import LineSource

STRETCH_LINES: int

def gather(
    data: bytes, starts: npt.NDArray[np.int64], index: npt.NDArray[np.int64]
) -> tuple[bytes, npt.NDArray[np.int64]]: ...
def write_merged(
    blocks: list[tuple[bytes, npt.NDArray[np.int64]] | tuple[LineSource, int, int]],
    block_of: npt.NDArray[np.int64],
    line_of: npt.NDArray[np.int64],
    write: Callable[[memoryview], object],
    buffer_size: int = ...,
    stretch_lines: int = ...,
) -> None: ...
