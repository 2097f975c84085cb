"""The CP-Mobile family in PyTorch: the reference the Rust models are tested against.

* dcase25_baseline: the DCASE2025 task 1 baseline (simplified CP-Mobile; multiplier 1.8, expansion 2.1,
  strides b3 (1, 2), b4 (2, 1)).
* cp_mobile: CP-JKU's CP-Mobile (DCASE2023; multiplier 2.3, expansion 3.0, strides b2 (2, 2), b4 (2, 1),
  GRN after each block).
* sscp_mobile: Zhang et al.'s spatially separable CP-Mobile (DCASE2025; multiplier 1.8, expansion 2.2,
  strides as the baseline; stem and depthwise convs as parallel (3x1, 1x3) branches that are summed).

Module layout and state-dict names follow the public reference implementations (torchvision's
Conv2dNormActivation is a Sequential: 0 conv, 1 BatchNorm, 2 ReLU), which are also ascrepro's names.

As a script: python cp_mobile.py OUT ARCH base C | explicit w1,w2,... writes random weights, an input, eval
logits, train-mode logits, the running statistics after that train step and the model's torchinfo-convention
parameter and MAC counts at 1x256x65 (safetensors).
"""
import sys

import torch
import torch.nn as nn

from reference import perturb, write_parity

# arch -> (channels multiplier, expansion rate, strides, spatially separable, GRN after each block)
VARIANTS = {
    "dcase25_baseline": (1.8, 2.1, {"b3": (1, 2), "b4": (2, 1)}, False, False),
    "cp_mobile": (2.3, 3.0, {"b2": (2, 2), "b4": (2, 1)}, False, True),
    "sscp_mobile": (1.8, 2.2, {"b3": (1, 2), "b4": (2, 1)}, True, False),
}
N_BLOCKS = (3, 2, 1)


def make_divisible(v, divisor=8, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def plan(arch, channels):
    """(stem hidden, stem out, [(in, exp, out, stride)]) from a base width (int) or an explicit list
    [stem_hidden, stem_out, b1_exp, b1_out, ..., b6_exp, b6_out]."""
    mult, rate, strides, _, _ = VARIANTS[arch]
    n = sum(N_BLOCKS)
    blocks = []
    if isinstance(channels, int):
        base = make_divisible(channels, 8)
        per_stage = [base] + [make_divisible(base * mult ** s, 8) for s in range(len(N_BLOCKS))]
        hidden, stem_out = per_stage[0] // 4, per_stage[0]
        cin = stem_out
        for s, nb in enumerate(N_BLOCKS):
            for _ in range(nb):
                out = per_stage[s + 1]
                blocks.append((cin, make_divisible(cin * rate, 8), out))
                cin = out
    else:
        assert len(channels) == 2 + 2 * n
        hidden, stem_out = channels[0], channels[1]
        cin = stem_out
        for i in range(n):
            exp, out = channels[2 + 2 * i], channels[3 + 2 * i]
            blocks.append((cin, exp, out))
            cin = out
    return hidden, stem_out, [(i, e, o, strides.get(f"b{k + 1}", (1, 1))) for k, (i, e, o) in enumerate(blocks)]


class ConvNormAct(nn.Sequential):
    def __init__(s, cin, cout, k, stride=1, groups=1, relu=True):
        k = (k, k) if isinstance(k, int) else k
        pad = tuple((kk - 1) // 2 for kk in k)
        layers = [nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class GRN(nn.Module):
    def __init__(s):
        super().__init__()
        s.gamma = nn.Parameter(torch.zeros(1))
        s.beta = nn.Parameter(torch.zeros(1))

    def forward(s, x):
        gx = torch.norm(x, p=2, dim=(2, 3), keepdim=True)
        nx = gx / (gx.mean(dim=1, keepdim=True) + 1e-6)
        return s.gamma * (x * nx) + s.beta + x


class Block(nn.Module):
    def __init__(s, cin, exp, cout, stride, separable, grn):
        super().__init__()
        s.separable = separable
        if separable:
            s.exp_conv = ConvNormAct(cin, exp, 1)
            s.depth_conv = ConvNormAct(exp, exp, (3, 1), stride, groups=exp)
            s.depth_conv2 = ConvNormAct(exp, exp, (1, 3), stride, groups=exp)
            s.proj_conv = ConvNormAct(exp, cout, 1, relu=False)
        else:
            s.block = nn.Sequential(
                ConvNormAct(cin, exp, 1),
                ConvNormAct(exp, exp, 3, stride, groups=exp),
                ConvNormAct(exp, cout, 1, relu=False),
            )
        if grn:
            s.after_block_norm = GRN()
        s.use_shortcut = cin == cout
        if s.use_shortcut and tuple(stride) != (1, 1):
            s.shortcut = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1)
        else:
            s.shortcut = nn.Identity()

    def body(s, x):
        if not s.separable:
            return s.block(x)
        x = s.exp_conv(x)
        return s.proj_conv(s.depth_conv(x) + s.depth_conv2(x))

    def forward(s, x):
        y = s.body(x)
        if s.use_shortcut:
            y = y + s.shortcut(x)
        if hasattr(s, "after_block_norm"):
            y = s.after_block_norm(y)
        return torch.relu(y)


class Net(nn.Module):
    def __init__(s, arch, channels, n_classes=10):
        super().__init__()
        _, _, _, separable, grn = VARIANTS[arch]
        hidden, stem_out, blocks = plan(arch, channels)
        s.separable = separable
        if separable:
            s.in_c = nn.Sequential(ConvNormAct(1, hidden, (3, 1), 2), ConvNormAct(hidden, stem_out, (1, 3), 2))
            s.in_c2 = nn.Sequential(ConvNormAct(1, hidden, (1, 3), 2), ConvNormAct(hidden, stem_out, (3, 1), 2))
        else:
            s.in_c = nn.Sequential(ConvNormAct(1, hidden, 3, 2), ConvNormAct(hidden, stem_out, 3, 2))
        s.stages = nn.Sequential()
        k = 0
        for si, nb in enumerate(N_BLOCKS):
            stage = nn.Sequential()
            for _ in range(nb):
                cin, exp, cout, stride = blocks[k]
                k += 1
                stage.add_module(f"b{k}", Block(cin, exp, cout, stride, separable, grn))
            s.stages.add_module(f"s{si + 1}", stage)
        s.feed_forward = nn.Sequential(
            nn.Conv2d(blocks[-1][2], n_classes, 1, bias=False), nn.BatchNorm2d(n_classes), nn.AdaptiveAvgPool2d((1, 1))
        )

    def forward(s, x):
        x = s.in_c(x) + s.in_c2(x) if s.separable else s.in_c(x)
        x = s.stages(x)
        return s.feed_forward(x).squeeze(2).squeeze(2)


def torchinfo_count(net, shape):
    """Params and MACs with torchinfo's convention: every learnable element; conv: weight numel per output
    position (+ bias); BatchNorm: 2 per channel; GRN's gamma/beta: params only."""
    macs = [0]

    def hook(m, _inp, out):
        if isinstance(m, nn.Conv2d):
            n = out.shape[2] * out.shape[3]
            macs[0] += m.weight.numel() * n + (m.bias.numel() * n if m.bias is not None else 0)
        elif isinstance(m, nn.BatchNorm2d):
            macs[0] += 2 * m.num_features

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return sum(p.numel() for p in net.parameters()), macs[0]


def perturb_all(net):
    """Random BatchNorm affine parameters and statistics, random GRN gamma/beta."""
    perturb(net)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape) + 0.5)
                m.bias.copy_((torch.rand(m.bias.shape) - 0.5) * 0.4)


if __name__ == "__main__":
    out, arch, mode, value = sys.argv[1:5]
    channels = int(value) if mode == "base" else [int(v) for v in value.split(",")]
    torch.manual_seed(0)
    net = Net(arch, channels)
    params, macs = torchinfo_count(net, (1, 256, 65))
    perturb_all(net)
    x = torch.randn(3, 1, 256, 65)
    # F32 holds integers exactly only below 2^24: the counts go in base-4096 digits.
    counts = {f"count.{k}": torch.tensor([float(v // 4096 ** 2), float(v // 4096 % 4096), float(v % 4096)])
              for k, v in (("params", params), ("macs", macs))}
    write_parity(out, net, x, counts)
