"""Types of the compiled ``windows.radix_sort`` (see radix_sort.pyx)."""

import numpy as np
import numpy.typing as npt

def sort_packed(values: npt.NDArray[np.int64], bits: int) -> None: ...
