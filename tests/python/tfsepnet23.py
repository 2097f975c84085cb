"""TF-SepNet (Cai et al., DCASE2023) in PyTorch: the reference the Rust model is tested against.
State-dict names equal ascrepro's VarStore names.

As a script: python tfsepnet23.py OUT WIDTH ada|res LAMBDA GROUPS(0: default) writes random weights, an
input, eval logits, train-mode logits and the running statistics after that train step (safetensors)."""
import sys

import torch
import torch.nn as nn

from reference import perturb, save_safetensors, state_without_counters


class ConvBn(nn.Module):
    def __init__(s, cin, cout, k, stride=1, pad=0, groups=1, bn=True, relu=True, bias=False):
        super().__init__()
        s.conv = nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=bias)
        s.bn = nn.BatchNorm2d(cout) if bn else None
        s.relu = relu
    def forward(s, x):
        x = s.conv(x)
        if s.bn is not None:
            x = s.bn(x)
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


class TfSepConv(nn.Module):
    def __init__(s, cin, cout, groups=None):
        super().__init__()
        s.proj = ConvBn(cin, cout, 1) if cin != cout else None
        s.g = groups if groups else cout // 2
        h1, h2 = cout // 2, cout - cout // 2
        s.h = [h1, h2]
        s.freq_dw = ConvBn(h1, h1, (3, 1), pad=(1, 0), groups=h1)
        s.freq_pw = ConvBn(h1, h1, 1)
        s.time_dw = ConvBn(h2, h2, (1, 3), pad=(0, 1), groups=h2)
        s.time_pw = ConvBn(h2, h2, 1)
        s.drop = nn.Dropout(0.0)
    def forward(s, x):
        if s.proj is not None:
            x = s.proj(x)
        b, c, f, t = x.shape
        g = s.g
        x = x.reshape(b, c // g, g, f, t).permute(0, 2, 1, 3, 4).reshape(b, c, f, t)
        x1, x2 = torch.split(x, s.h, dim=1)
        y1 = s.drop(s.freq_pw(s.freq_dw(x1).mean(2, keepdim=True))) + x1
        y2 = s.drop(s.time_pw(s.time_dw(x2).mean(3, keepdim=True))) + x2
        return torch.cat([y1, y2], 1)

class Stage(nn.Module):
    def __init__(s, cin, cout, n, pool, make_norm, groups):
        super().__init__()
        for j in range(n):
            setattr(s, f"block{j}", TfSepConv(cin if j == 0 else cout, cout, groups))
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
        s.stage1 = Stage(2 * C, w[0], 2, True, make_norm, groups)
        s.stage2 = Stage(w[0], w[1], 2, True, make_norm, groups)
        s.stage3 = Stage(w[1], w[2], 2, False, make_norm, groups)
        s.stage4 = Stage(w[2], w[3], 3, False, make_norm, groups)
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
    state = state_without_counters(net)
    x = torch.randn(4, 1, 128, 44)
    net.eval()
    with torch.no_grad():
        eval_logits = net(x)
    net.train()
    with torch.no_grad():
        train_logits = net(x)
    after = {"after." + k: v for k, v in net.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    save_safetensors(out, {**state, **after, "x": x, "eval_logits": eval_logits, "train_logits": train_logits})
