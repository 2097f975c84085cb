"""TF-SepNet (Cai et al., DCASE2023) in PyTorch: the reference the Rust model is tested against.
State-dict names equal ascrepro's VarStore names.

As a script: python tfsepnet23.py OUT WIDTH ada|res LAMBDA GROUPS(0: default) writes random weights, an
input, eval logits, train-mode logits and the running statistics after that train step (safetensors)."""
import sys

import torch
import torch.nn as nn

from reference import AdaResNorm, ConvBn, ResNorm, perturb, write_parity


class TfSepConv(nn.Module):
    """The TF-SepConv block of both TF-SepNet (2023) and TF-SepNet-64 (2024/2025), with the released
    code's sub-module names."""

    def __init__(s, cin, cout, groups=None, dropout=0.0):
        super().__init__()
        unit = lambda *a, **k: ConvBn(*a, underscored=True, **k)
        s.trans_conv = unit(cin, cout, 1) if cin != cout else None
        s.g = groups if groups else cout // 2
        h1, h2 = cout // 2, cout - cout // 2
        s.h = [h1, h2]
        s.freq_dw_conv = unit(h1, h1, (3, 1), pad=(1, 0), groups=h1)
        s.freq_pw_conv = unit(h1, h1, 1)
        s.temp_dw_conv = unit(h2, h2, (1, 3), pad=(0, 1), groups=h2)
        s.temp_pw_conv = unit(h2, h2, 1)
        s.drop = nn.Dropout(dropout)
    def forward(s, x):
        if s.trans_conv is not None:
            x = s.trans_conv(x)
        b, c, f, t = x.shape
        g = s.g
        x = x.reshape(b, c // g, g, f, t).permute(0, 2, 1, 3, 4).reshape(b, c, f, t)
        x1, x2 = torch.split(x, s.h, dim=1)
        y1 = s.drop(s.freq_pw_conv(s.freq_dw_conv(x1).mean(2, keepdim=True))) + x1
        y2 = s.drop(s.temp_pw_conv(s.temp_dw_conv(x2).mean(3, keepdim=True))) + x2
        return torch.cat([y1, y2], 1)

class Stage(nn.Module):
    """`n` blocks `make_block(cin, cout)` (`block0`, ...), the norm, an optional 2x2 max-pool; the stage of
    TF-SepNet and of the BC-ResNet it is compared with."""

    def __init__(s, cin, cout, n, pool, make_norm, make_block):
        super().__init__()
        for j in range(n):
            setattr(s, f"block{j}", make_block(cin if j == 0 else cout, cout))
        s.n = n
        s.norm = make_norm(cout)
        s.pool = nn.MaxPool2d(2) if pool else None
    def forward(s, x):
        for j in range(s.n):
            x = getattr(s, f"block{j}")(x)
        x = s.norm(x)
        return s.pool(x) if s.pool is not None else x

class Net(nn.Module):
    """`norm`: "ada" (AdaResNorm) or "res" (ResNorm with `lam`); `groups`: shuffle groups (None: half)."""

    def __init__(s, C, norm="ada", lam=0.1, groups=None):
        super().__init__()

        def make_norm(c):
            return AdaResNorm(c) if norm == "ada" else ResNorm(lam)

        s.stem = ConvBn(1, 2 * C, 5, stride=2, pad=2, bn=False, relu=False)
        s.stem_norm = make_norm(2 * C)
        w = [round(m * C) for m in (1, 1.5, 2, 2.5)]
        block = lambda cin, cout: TfSepConv(cin, cout, groups)
        s.stage1 = Stage(2 * C, w[0], 2, True, make_norm, block)
        s.stage2 = Stage(w[0], w[1], 2, True, make_norm, block)
        s.stage3 = Stage(w[1], w[2], 2, False, make_norm, block)
        s.stage4 = Stage(w[2], w[3], 3, False, make_norm, block)
        s.head = ConvBn(w[3], 10, 1, bn=False, relu=False, bias=True)
    def forward(s, x):
        x = s.stem_norm(s.stem(x))
        x = s.stage4(s.stage3(s.stage2(s.stage1(x))))
        return s.head(x).mean(dim=(2, 3))


if __name__ == "__main__":
    out, width, norm, lam, groups = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
    torch.manual_seed(0)
    net = Net(width, norm, lam, groups if groups > 0 else None)
    perturb(net)
    write_parity(out, net, torch.randn(4, 1, 128, 44))
