"""Types of the compiled ``connectors.event_scan`` (see event_scan.pyx)."""

import numpy as np
import numpy.typing as npt

from connectors.event_lines import EventLines
from connectors.key_table import KeyTable

def scan_fields(
    raws: list[bytes] | EventLines,
    key_field: str,
    timestamp_field: str,
    numeric_fields: tuple[str, ...],
    max_bytes: int,
    table: KeyTable | None = None,
) -> (
    tuple[list[str | None], npt.NDArray[np.int64], dict[str, npt.NDArray[np.float64]], npt.NDArray[np.int64] | None]
    | None
): ...
def line_spans(
    data: bytes, limit: int = -1
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]: ...
