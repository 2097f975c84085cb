"""Helpers shared by the PyTorch reference scripts of the tests and benches."""
import json
import struct

import torch


def save_safetensors(path, tensors):
    """Writes float tensors as an F32 safetensors file (no dependency on the safetensors package)."""
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        a = tensors[k].detach().contiguous().float().numpy().astype("<f4")
        b = a.tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def perturb(net):
    """Gives norms non-trivial values so eval paths are really exercised."""
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            r = torch.rand(t.shape)
            if name.endswith(("running_var", "bn.weight", "_bn.weight", "gamma")):
                t.copy_(r + 0.5)
            elif name.endswith(("running_mean", "bn.bias", "_bn.bias", "beta")):
                t.copy_((r - 0.5) * 0.4)
            elif name.endswith("rho"):
                t.copy_(r)


def state_without_counters(net):
    return {k: v.clone() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
