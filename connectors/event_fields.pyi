"""Types of the compiled ``connectors.event_fields`` (see event_fields.pyx)."""

from typing import Any

import numpy as np
import numpy.typing as npt

def event_fields(
    docs: list[Any], key_field: str, timestamp_field: str, numeric_fields: tuple[str, ...], epoch_ms: bool
) -> tuple[list[str], npt.NDArray[np.int64] | list[Any], dict[str, npt.NDArray[np.float64]]] | None: ...
