"""Helpers shared by the PyTorch reference scripts of the tests and benches: the building blocks several
models share (ConvBn, ResNorm, AdaResNorm), weight perturbation, and writing parity files."""
import json
import struct

import torch
import torch.nn as nn


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


def write_parity(out, net, x, extra=None):
    """Writes what a Rust parity test compares (safetensors at `out`): the state dict without counters,
    the input `x`, eval logits, train-mode logits and the running statistics after that train step
    (`after.<name>`), plus `extra` tensors."""
    state = state_without_counters(net)
    net.eval()
    with torch.no_grad():
        eval_logits = net(x)
    net.train()
    with torch.no_grad():
        train_logits = net(x)
    after = {"after." + k: v for k, v in net.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    save_safetensors(out, {**state, **after, **(extra or {}), "x": x, "eval_logits": eval_logits,
                           "train_logits": train_logits})


class ConvBn(nn.Module):
    """Conv, optional BatchNorm, optional ReLU. `underscored`: sub-modules `_conv`/`_bn` (the released
    TF-SepNet code's ConvBnRelu, used inside TF-SepConv blocks) instead of `conv`/`bn`."""

    def __init__(s, cin, cout, k, stride=1, pad=0, groups=1, bn=True, relu=True, bias=False, underscored=False):
        super().__init__()
        s.names = ("_conv", "_bn") if underscored else ("conv", "bn")
        setattr(s, s.names[0], nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=bias))
        setattr(s, s.names[1], nn.BatchNorm2d(cout) if bn else None)
        s.relu = relu
    def forward(s, x):
        x = getattr(s, s.names[0])(x)
        bn = getattr(s, s.names[1])
        if bn is not None:
            x = bn(x)
        return torch.relu(x) if s.relu else x

def freq_in(x):
    mean = x.mean(dim=(1, 3), keepdim=True)
    var = x.var(dim=(1, 3), keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5)

class AdaResNorm(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.rho = nn.Parameter(torch.full((1, c, 1, 1), 0.5))
        s.gamma = nn.Parameter(torch.ones(1, c, 1, 1))
        s.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
    def forward(s, x):
        return (s.rho * x + (1 - s.rho) * freq_in(x)) * s.gamma + s.beta

class ResNorm(nn.Module):
    def __init__(s, lam):
        super().__init__()
        s.lam = lam
    def forward(s, x):
        return s.lam * x + freq_in(x)
