"""Types of the compiled ``jobs.key_lookup`` (see key_lookup.pyx)."""

import numpy as np
import numpy.typing as npt

def known_ids(ids: dict[str, int], keys: list[str]) -> tuple[npt.NDArray[np.int64], int]: ...
