"""Types of the compiled ``connectors.record_batches`` (see record_batches.pyx)."""

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

HEADER_BYTES: int
CRC_FROM: int

def crc32c(data: Buffer) -> int: ...
def build_batch(
    datas: list[bytes],
    line_starts: list[npt.NDArray[np.int64]],
    line_keys: list[npt.NDArray[np.int64]],
    part: int,
    first: int,
    keys: list[bytes] | list[bytes | None],
    timestamp_ms: int,
    max_bytes: int,
) -> tuple[bytes, int, int, int]: ...

HARDWARE_CRC: bool

def crc32c_tables(data: Buffer) -> int: ...
