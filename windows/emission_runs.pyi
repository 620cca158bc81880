"""Types of the compiled ``windows.emission_runs`` (see emission_runs.pyx)."""

import numpy as np
import numpy.typing as npt

def emission_runs(
    order: npt.NDArray[np.int64], bounds: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], list[tuple[int, int, int]]]: ...
