"""Types of the compiled ``connectors.record_batches`` (see record_batches.pyx)."""

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

HEADER_BYTES: int
CRC_FROM: int

def crc32c(data: Buffer) -> int: ...
def build_batch(
    data: bytes,
    starts: npt.NDArray[np.int64],
    first: int,
    keys: list[bytes] | list[bytes | None],
    key_ids: npt.NDArray[np.int64],
    timestamp_ms: int,
    max_bytes: int,
) -> tuple[bytes, int]: ...

HARDWARE_CRC: bool

def crc32c_tables(data: Buffer) -> int: ...
