"""BC-ResNet as compared in Cai et al., DCASE2023 Table 3, in PyTorch: the reference the Rust model is
tested against. State-dict names equal ascrepro's VarStore names; the blocks carry the names of Cai et
al.'s released `BroadcastBlock` (easy_dcase_task1, model/shared.py).

As a script: python bcresnet.py OUT WIDTH ada|res LAMBDA SUB_BANDS FREQ_BINS writes random weights, an
input [4, 1, FREQ_BINS, 44], eval logits, train-mode logits and the running statistics after that train
step (safetensors)."""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference import AdaResNorm, ConvBn, ResNorm, perturb, write_parity
from tfsepnet23 import Stage


class SubSpectralNorm(nn.Module):
    """BatchNorm over C * S channels: each channel's frequency axis cut into S sub-bands.

    When S divides the frequency bins this is the original view-based SubSpectralNorm (Chang et al.,
    2021; Kim et al.'s BC-ResNet code). Otherwise the bands are cut as torch.tensor_split does and each
    (channel, band) pair is normalised here with explicit batch-norm arithmetic, an independent
    formulation of what the Rust model computes with one batch_norm call per band."""

    def __init__(s, c, sub_bands):
        super().__init__()
        s.sub_bands = sub_bands
        s._bn = nn.BatchNorm2d(c * sub_bands)

    def forward(s, x):
        n, c, f, t = x.shape
        S = s.sub_bands
        if f % S == 0:
            return s._bn(x.reshape(n, c * S, f // S, t)).reshape(n, c, f, t)
        bn = s._bn
        weight, bias = bn.weight.view(c, S), bn.bias.view(c, S)
        rm, rv = bn.running_mean.view(c, S), bn.running_var.view(c, S)
        out = []
        for band, xb in enumerate(torch.tensor_split(x, S, dim=2)):
            if s.training:
                mean = xb.mean(dim=(0, 2, 3))
                var = xb.var(dim=(0, 2, 3), unbiased=False)
                count = xb.numel() // c
                with torch.no_grad():
                    rm[:, band] = (1 - bn.momentum) * rm[:, band] + bn.momentum * mean
                    rv[:, band] = (1 - bn.momentum) * rv[:, band] + bn.momentum * var * count / (count - 1)
            else:
                mean, var = rm[:, band], rv[:, band]
            shape = (1, c, 1, 1)
            y = (xb - mean.view(shape)) / torch.sqrt(var.view(shape) + bn.eps)
            out.append(y * weight[:, band].view(shape) + bias[:, band].view(shape))
        return torch.cat(out, dim=2)


class BroadcastBlock(nn.Module):
    """Broadcasted residual block (Kim et al., 2021) with the sub-module names of Cai et al.'s code."""

    def __init__(s, cin, cout, sub_bands, dropout):
        super().__init__()
        unit = lambda *a, **k: ConvBn(*a, underscored=True, **k)
        s.trans_conv = unit(cin, cout, 1) if cin != cout else None
        s.freq_dw_conv = nn.Conv2d(cout, cout, (3, 1), padding=(1, 0), groups=cout, bias=False)
        s.ssn = SubSpectralNorm(cout, sub_bands)
        s.temp_dw_conv = unit(cout, cout, (1, 3), pad=(0, 1), groups=cout, relu=False)
        s.pw_conv = nn.Conv2d(cout, cout, 1, bias=False)
        s.drop = nn.Dropout(dropout)

    def forward(s, x):
        identity = x
        if s.trans_conv is not None:
            x = s.trans_conv(x)
        aux = s.ssn(s.freq_dw_conv(x))
        y = F.silu(s.temp_dw_conv(aux.mean(2, keepdim=True)))
        y = s.drop(s.pw_conv(y))
        y = aux + y if s.trans_conv is not None else identity + aux + y
        return torch.relu(y)


class Net(nn.Module):
    """`norm`: "ada" (AdaResNorm) or "res" (ResNorm with `lam`)."""

    def __init__(s, C, norm="res", lam=0.1, sub_bands=5, dropout=0.0):
        super().__init__()

        def make_norm(c):
            return AdaResNorm(c) if norm == "ada" else ResNorm(lam)

        s.stem = ConvBn(1, 2 * C, 5, stride=2, pad=2, bn=False, relu=False)
        s.stem_norm = make_norm(2 * C)
        w = [int(m * C) for m in (1, 1.5, 2, 2.5)]
        block = lambda cin, cout: BroadcastBlock(cin, cout, sub_bands, dropout)
        s.stage1 = Stage(2 * C, w[0], 2, True, make_norm, block)
        s.stage2 = Stage(w[0], w[1], 2, True, make_norm, block)
        s.stage3 = Stage(w[1], w[2], 2, False, make_norm, block)
        s.stage4 = Stage(w[2], w[3], 3, False, make_norm, block)
        s.head = ConvBn(w[3], 10, 1, bn=False, relu=False, bias=False)

    def forward(s, x):
        x = s.stem_norm(s.stem(x))
        x = s.stage4(s.stage3(s.stage2(s.stage1(x))))
        return s.head(x).mean(dim=(2, 3))


if __name__ == "__main__":
    out, width, norm, lam = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    sub_bands, freq_bins = int(sys.argv[5]), int(sys.argv[6])
    torch.manual_seed(0)
    net = Net(width, norm, lam, sub_bands)
    perturb(net)
    write_parity(out, net, torch.randn(4, 1, freq_bins, 44))
