"""Types of the compiled ``connectors.trace_ids`` (see trace_ids.pyx)."""

import numpy as np
import numpy.typing as npt

from connectors.event_lines import EventLines

def trace_ids(
    traceparents: list[bytes | None] | None,
    raws: list[bytes] | EventLines,
    high: npt.NDArray[np.int64],
    low: npt.NDArray[np.int64],
    decided: npt.NDArray[np.uint8],
) -> None: ...
