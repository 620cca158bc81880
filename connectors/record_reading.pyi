"""Types of the compiled ``connectors.record_reading`` (see record_reading.pyx)."""

import numpy as np
import numpy.typing as npt

class CorruptBatch(ValueError): ...

def plain_batches(raw: bytes) -> bool: ...
def read_batches(
    raw: bytes, pos: int, fetch_offset: int, wanted: int, check_crcs: bool
) -> tuple[
    npt.NDArray[np.int64],
    list[bytes | None],
    list[bytes],
    npt.NDArray[np.int64],
    list[bytes | None],
    int,
    int,
    bool,
]: ...
