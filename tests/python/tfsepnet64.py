"""TF-SepNet-64 (Cai et al., DCASE2024 Table 2; backbone of Zhou et al., DCASE2025) in PyTorch: the
reference the Rust model is tested and benchmarked against. Module names follow the released code
(`conv_layers`, `middle_layers`, `classifier.conv`), so state-dict names equal ascrepro's VarStore
names and the released checkpoints' names without their `backbone.` prefix.

As a script: python tfsepnet64.py OUT WIDTH DEPTH writes random weights, an input, eval logits,
train-mode logits and the running statistics after that train step (safetensors)."""
import sys

import torch
import torch.nn as nn

from reference import ConvBn, ResNorm, perturb, write_parity
from tfsepnet23 import TfSepConv


class Classifier(nn.Module):
    def __init__(s, cin, num_classes):
        super().__init__()
        s.conv = nn.Conv2d(cin, num_classes, 1, bias=True)
    def forward(s, x):
        return s.conv(x).mean((-1, -2))


def layout(width, depth):
    """The released code's `cfg[depth]`: "N" ResNorm, "M" max-pool, a number a block's channels."""
    cfg = ["N", 1, 1, "N", "M", 1.5, 1.5, "N", "M", 2, 2, "N"] + (["M"] if depth == 17 else []) + [2.5, 2.5, 2.5, "N"]
    return [v if isinstance(v, str) else int(v * width) for v in cfg]


class TfSepNet64(nn.Module):
    def __init__(s, width=64, depth=17, dropout=0.1, num_classes=10):
        super().__init__()
        c = width
        s.conv_layers = nn.Sequential(
            ConvBn(1, c // 2, 3, stride=2, pad=1, underscored=True),
            ConvBn(c // 2, 2 * c, 3, stride=2, pad=1, groups=c // 2, underscored=True),
        )
        layers, ch = [], 2 * c
        for v in layout(width, depth):
            if v == "N":
                layers.append(ResNorm(0.1))
            elif v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(TfSepConv(ch, v, dropout=dropout))
                ch = v
        s.middle_layers = nn.Sequential(*layers)
        s.classifier = Classifier(ch, num_classes)
    def forward(s, x):
        return s.classifier(s.middle_layers(s.conv_layers(x)))


if __name__ == "__main__":
    out, width, depth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.manual_seed(0)
    # No dropout: train-mode logits must be comparable across implementations.
    net = TfSepNet64(width, depth, dropout=0.0)
    perturb(net)
    write_parity(out, net, torch.randn(4, 1, 512, 64))
