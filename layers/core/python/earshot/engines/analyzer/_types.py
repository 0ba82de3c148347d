"""Array and label types shared by the analyzer's modules."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

ContentLabel = Literal["speech", "music", "other", "silence"]
