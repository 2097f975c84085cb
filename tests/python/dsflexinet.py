"""DSFlexiNet (Ramezanee et al., DCASE2025 task 1) in PyTorch: the reference the Rust model is tested against.
State-dict names equal ascrepro's VarStore names, which are those of the authors' released checkpoints
(`conv1.0.weight`, `stage1.0.expand_conv.weight`, `stage1_norm.lambda_param`, ...).

`merged=False` is the training-time graph (each RepConv2d has four parallel branches `conv1`..`conv4`);
`merged=True` is the inference graph of the released checkpoints (each RepConv2d is one 3x3 conv named `0`).

As a script: python dsflexinet.py OUT WIDTH MERGED(0|1) writes random weights, an input, eval logits, train-mode
logits and the running statistics after that train step (safetensors). Dropout is 0 so train mode is deterministic."""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference import write_parity


class RepConv2d(nn.Module):
    """3x3, 1x3, 3x1 and 1x1 convs (no bias) in parallel, summed; or the single 3x3 conv they merge into."""

    def __init__(s, cin, cout, stride=1, groups=1, merged=False):
        super().__init__()
        s.merged = merged
        if merged:
            s.add_module("0", nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False))
        else:
            s.conv1 = nn.Conv2d(cin, cout, (3, 3), stride, (1, 1), groups=groups, bias=False)
            s.conv2 = nn.Conv2d(cin, cout, (1, 3), stride, (0, 1), groups=groups, bias=False)
            s.conv3 = nn.Conv2d(cin, cout, (3, 1), stride, (1, 0), groups=groups, bias=False)
            s.conv4 = nn.Conv2d(cin, cout, (1, 1), stride, (0, 0), groups=groups, bias=False)

    def forward(s, x):
        if s.merged:
            return getattr(s, "0")(x)
        return s.conv1(x) + s.conv2(x) + s.conv3(x) + s.conv4(x)


class ResidualNormalization(nn.Module):
    """lambda * x + InstanceNorm2d(x) (affine), lambda per channel."""

    def __init__(s, c):
        super().__init__()
        s.lambda_param = nn.Parameter(torch.ones(c, 1, 1))
        s.instance_norm = nn.InstanceNorm2d(c, affine=True)

    def forward(s, x):
        return s.lambda_param * x + s.instance_norm(x)


class LearnablePooling(nn.Module):
    """Per-channel softmax attention over (F, T) from a normalised copy of x; output [attention-pooled x, mean x]."""

    def __init__(s, c):
        super().__init__()
        s.bn_input = ResidualNormalization(c)
        s.attn_conv = nn.Conv2d(c, c // 2, 1, bias=False)
        s.bn_attn = ResidualNormalization(c // 2)
        s.attn_score = nn.Conv2d(c // 2, c, 1, bias=False)

    def forward(s, x):
        a = F.leaky_relu(s.bn_attn(s.attn_conv(s.bn_input(x))), 0.1)
        scores = s.attn_score(a)
        b, c, h, w = x.shape
        weights = F.softmax(scores.view(b, c, -1), dim=-1).view(b, c, h, w)
        return torch.cat([(x * weights).sum(dim=[2, 3]), x.mean(dim=[2, 3])], dim=1)


class DSFlexiNetBlock(nn.Module):
    """BN -> 1x1 conv -> LeakyReLU -> BN -> depthwise RepConv -> LeakyReLU, plus a 1x1-conv skip.
    `expand_norm` exists in the released checkpoints but the forward never uses it."""

    def __init__(s, cin, cout, merged):
        super().__init__()
        s.input_norm = nn.BatchNorm2d(cin)
        s.input_scaling = nn.Conv2d(cin, cout, 1, bias=False)
        s.expand_conv = nn.Conv2d(cin, cout, 1, bias=False)
        s.expand_norm = nn.BatchNorm2d(cout)
        s.spatial_conv = RepConv2d(cout, cout, 1, groups=cout, merged=merged)
        s.spatial_norm = nn.BatchNorm2d(cout)

    def forward(s, x):
        out = F.leaky_relu(s.expand_conv(s.input_norm(x)))
        out = F.leaky_relu(s.spatial_conv(s.spatial_norm(out)))
        return out + s.input_scaling(x)


class Net(nn.Module):
    def __init__(s, width=32, merged=False, dropout=0.2, classes=10):
        super().__init__()
        w = width
        s.input_norm = nn.BatchNorm2d(1)
        s.conv1 = RepConv2d(1, w // 2, 2, merged=merged)
        s.norm1 = nn.BatchNorm2d(w // 2)
        s.conv2 = RepConv2d(w // 2, w, 2, merged=merged)
        s.stage1 = nn.Sequential(*[DSFlexiNetBlock(w, w, merged) for _ in range(3)])
        s.stage1_norm = ResidualNormalization(w)
        s.stage2 = nn.Sequential(*[DSFlexiNetBlock(w, w, merged) for _ in range(3)])
        s.stage2_norm = ResidualNormalization(w)
        s.stage3 = nn.Sequential(DSFlexiNetBlock(w, 2 * w, merged))
        s.stage3_norm = ResidualNormalization(2 * w)
        s.pooling = LearnablePooling(2 * w)
        s.head_norm = nn.BatchNorm1d(4 * w)
        s.dropout = nn.Dropout(dropout)
        s.classifier = nn.Linear(4 * w, classes)

    def forward(s, x):
        x = s.input_norm(x)
        x = s.norm1(torch.relu(s.conv1(x)))
        x = torch.relu(s.conv2(x))
        x = s.stage1_norm(s.stage1(x) + x)
        x = s.stage2_norm(s.stage2(x) + x)
        x = s.stage3_norm(s.stage3(x))
        return s.classifier(s.dropout(s.head_norm(s.pooling(x))))


def perturb(net):
    """Gives every norm non-trivial parameters and running statistics so eval paths are really exercised."""
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("num_batches_tracked") or name.startswith("classifier"):
                continue
            r = torch.rand(t.shape)
            if name.endswith(("running_var", "lambda_param")) or (name.endswith("weight") and t.dim() == 1):
                t.copy_(r + 0.5)
            elif name.endswith("running_mean") or (name.endswith("bias") and t.dim() == 1):
                t.copy_((r - 0.5) * 0.4)


if __name__ == "__main__":
    out, width, merged = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    torch.manual_seed(0)
    net = Net(width, merged, dropout=0.0)
    perturb(net)
    write_parity(out, net, torch.randn(4, 1, 63, 23))
