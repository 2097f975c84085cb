"""Writes a safetensors weights file as a plain PyTorch state dict (`torch.save`), as authors
release `.pth` files: argv[1] safetensors in, argv[2] .pth out."""
import json
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F64": np.float64}

with open(sys.argv[1], "rb") as f:
    blob = f.read()
(n,) = struct.unpack("<Q", blob[:8])
header = json.loads(blob[8 : 8 + n])
data = blob[8 + n :]
state = OrderedDict()
for name, info in sorted(header.items()):
    if name == "__metadata__":
        continue
    start, end = info["data_offsets"]
    array = np.frombuffer(data[start:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    state[name] = torch.from_numpy(array.copy())
torch.save(state, sys.argv[2])
