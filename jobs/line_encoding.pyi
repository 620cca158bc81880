"""Types of the compiled ``jobs.line_encoding`` (see line_encoding.pyx)."""

import numpy as np
import numpy.typing as npt

from connectors.line_source import LineSource

class PlacedRows(LineSource): ...

class ResultRows(PlacedRows):
    def __init__(
        self,
        head: bytes,
        key_json: list[bytes],
        key_ids: npt.NDArray[np.int64],
        starts: npt.NDArray[np.int64],
        ends: npt.NDArray[np.int64],
        emitted_at: npt.NDArray[np.int64],
        names: list[bytes],
        columns: list[np.ndarray],
    ) -> None: ...

class DecisionRows(PlacedRows):
    origins: npt.NDArray[np.int64]
    def __init__(
        self,
        head: bytes,
        id_prefix: bytes,
        key_text: list[bytes],
        key_json: list[bytes],
        key_ids: npt.NDArray[np.int64],
        starts: npt.NDArray[np.int64],
        ends: npt.NDArray[np.int64],
        emitted_at: npt.NDArray[np.int64],
        names: list[bytes],
        columns: list[np.ndarray],
        trace_rows: npt.NDArray[np.int64] | None,
        traces: npt.NDArray[np.int64] | tuple[npt.NDArray[np.int64], ...] | None,
    ) -> None: ...
