"""Loads an .npy file with numpy exactly as a user would (np.load, no options) and reports what
it holds: prints one JSON line {"shape", "dtype", "c_contiguous", "finite"} and writes the
values as raw little-endian float32 to the second argument, for the test to compare."""
import json
import sys

import numpy as np

a = np.load(sys.argv[1])
print(json.dumps({
    "shape": list(a.shape),
    "dtype": str(a.dtype),
    "c_contiguous": bool(a.flags["C_CONTIGUOUS"]),
    "finite": bool(np.isfinite(a).all()),
}))
a.astype("<f4").tofile(sys.argv[2])
