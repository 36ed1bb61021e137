"""Array aliases used in signatures (numpy only)."""

import numpy as np
import numpy.typing as npt

FloatVector = npt.NDArray[np.float32]
FloatMatrix = npt.NDArray[np.float32]
IndexVector = npt.NDArray[np.int32]
OffsetVector = npt.NDArray[np.int64]
TimeVector = npt.NDArray[np.int64]
