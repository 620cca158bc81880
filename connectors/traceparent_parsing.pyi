"""Types of the compiled ``connectors.traceparent_parsing`` (see traceparent_parsing.pyx)."""

import numpy as np
import numpy.typing as npt

def parse_traceparents(
    traceparents: list[bytes | None],
    high: npt.NDArray[np.int64],
    low: npt.NDArray[np.int64],
    parsed: npt.NDArray[np.uint8],
) -> None: ...
