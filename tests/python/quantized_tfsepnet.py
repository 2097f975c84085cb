"""PyTorch eager-mode post-training static INT8 quantization (fbgemm) of TF-SepNet-64 and TF-SepNet
(2023): the reference the pure-Rust INT8 engine is compared with, activation point by activation point.

Usage
  quantized_tfsepnet.py ARCH --weights W.safetensors --data IN.safetensors --out OUT.safetensors
                        [--points OUT.json] [--observer histogram|minmax] [--lam L] [--groups G]
      ARCH: `tfsepnet64 WIDTH DEPTH` or `tfsepnet23 WIDTH ada|res` (tfsepnet23 only: `--lam`, its
      ResNorm's lambda, 0.1; `--groups`, its shuffle groups, default half a block's channels). W holds
      the float weights under their state-dict names (F32 or F64; `num_batches_tracked` may be absent;
      the number of classes is the head's output channels); IN holds `calibration` [N, 1, F, T] (run
      in batches of 32 clips) and `test` [B, 1, F, T]. Explicit (pruned) widths are not supported.
  quantized_tfsepnet.py --selfcheck [ARCH]
      Quantizes random weights (tfsepnet64 8 17, tfsepnet64 16 16, tfsepnet23 8 ada and 8 res, or
      just ARCH), with both observers, prints the largest |logits_q - logits_f| and the memory
      formats, and fails unless every point is present in forward order, the quantizable model run
      in float equals the float net, every quantized mean equals dequantize -> float mean ->
      quantize on its input's grid, and the logits are within a quarter of their largest magnitude.
  quantized_tfsepnet.py --bench int8|float [--freq 512] [--time 64] [--observer ...]
      The peer protocol of bench_tfsepnet64.py (`warmup N` -> `ok`; `round S` -> {"rate": clips per
      CPU second, "threads": 1}) for batch-1 inference of TF-SepNet-64 (width 64, depth 17, random
      weights, calibrated on 4 random batches of 8) on a 1 x 1 x F x T input, quantized (`int8`) or
      the float net (`float`). cpmel-512, the front end of TF-SepNet-64's reports, gives 512 x 64
      for a 1-s clip at 32 kHz (src/audio/frontend.rs), hence the default.

What PyTorch runs (qconfig `get_default_qconfig('fbgemm')`: HistogramObserver(reduce_range=True) on
activations, per-channel symmetric qint8 weights; `--observer minmax`: MinMaxObserver(reduce_range=
True) on activations, the same weights; engine fbgemm, one thread):
  QuantStub at the input; every ConvBn fused by `fuse_modules` (conv+bn+relu -> ConvReLU2d,
  conv+bn -> Conv2d, a conv alone stays a conv, bias kept); ResNorm/AdaResNorm in float between a
  DeQuantStub and a QuantStub; residual adds and the block's concat through FloatFunctional;
  channel shuffle, split, `mean(dim, keepdim=True)`, MaxPool2d and the head's `mean` on quantized
  tensors (they keep the grid of their input); DeQuantStub on the logits; dropout is the identity.

What the quantized ops give (torch 2.11, fbgemm, checked by --selfcheck where marked):
  - QuantStub: contiguous NCHW. Every quantized conv: channels_last, whatever its input's format.
  - Channel shuffle: the 5-d reshape/permute are views, the last reshape copies to contiguous NCHW;
    the split halves are channel slices of it (views, grid kept).
  - `mean` (keepdim) of a dw conv's channels-last output and the head's global mean of the
    classifier's channels-last output: PyTorch's quantized mean of a channels-last tensor is
    dequantize -> float32 mean -> quantize on the input's scale and zero point (contiguous output);
    selfcheck: identical in every element. (A contiguous NCHW tensor reduced over its innermost dims
    takes another kernel, nearbyint(float(sum q) / n); no mean here sees one.) It is
    not the exact mean: sums of q - zp often land exactly half-way between steps (n a power of two,
    zp 0 after ReLU), and float32 noise decides those ties; about 1 to 2 % of the mean elements
    differ by one step from the exact mean rounded half to even, all of them at such ties.
  - Residual adds: quantized add broadcasts the pointwise conv's [B, C, 1, T] (freq) or [B, C, F, 1]
    (time) over the identity, allocating its output like the first operand and resizing it (ATen
    prints "An output with one or more elements was resized" on stderr); freq_add comes out
    contiguous, time_add with strides of an [B, F, C, T] layout (`strided`); selfcheck: both equal
    quantize(dequantize(a) + dequantize(b)) on the add's own grid in every element.
  - cat: contiguous, equal to quantize(cat(dequantized halves)) on its own grid (selfcheck).
  - Norms: dequantize keeps the format, so a norm after a conv (`middle_layers.0`, `stem_norm`) is
    channels_last, one after a block's concat contiguous. MaxPool2d keeps format and grid.

Activation points (the quantization points, named as the Rust model's `Probe::activation` names them):
  `input`                      the input QuantStub;
  `<unit path>`                a fused conv unit: the path of the float net's ConvBn (or of the
                               classifier), not of its inner `conv`/`_conv`: `conv_layers.0`,
                               `middle_layers.1.trans_conv`, `middle_layers.1.freq_dw_conv`, ...,
                               `classifier` (tfsepnet64's head: Rust's ConvBn `classifier`, whose conv
                               is `classifier.conv`), `stem`, `stage1.block0.temp_pw_conv`, `head`;
  `<norm path>`                a ResNorm/AdaResNorm's requantized output: `middle_layers.0`,
                               `stem_norm`, `stage1.norm`;
  `<block path>.freq_add`, `<block path>.time_add`, `<block path>.cat`: a TF-SepConv block's adds
                               and concat (`middle_layers.1.cat`, `stage1.block0.freq_add`).
In the quantizable model each point is the output of the module at that path, where a forward hook
records it (adds and the concat are small modules `freq_add`/`time_add`/`cat` around a
FloatFunctional, the input QuantStub is the module `input`).

Output (safetensors; scalars are 0-d):
  act/<point>    U8 [B, C, F, T]: the point's `int_repr()` on `test`, contiguous NCHW order;
  scale/<point>  F64, zp/<point> I64: its quantization parameters;
  mean/<point>   U8: a quantized `mean` of that point's output (the dw conv before each block's
                 pointwise conv, keepdim; the head's global mean [B, classes]), on the point's grid;
  weight/<unit>  I8 [O, I/groups, kh, kw]: the quantized (BN-folded) conv weight's int_repr;
  wscale/<unit>  F64 [O]: per-channel weight scales (zero points 0);
  bias/<unit>    F32 [O]: the float bias the quantized conv adds (absent: no bias);
  logits_q       F32 [B, classes]: the quantized model's dequantized logits;
  logits_f       F32 [B, classes]: the float net's logits.
  Metadata (`__metadata__`): `format/<point>` = `channels_last`, `contiguous` or `strided`
  (neither), the memory format PyTorch gave the quantized tensor; `observer`, `torch`, `engine`.
  --points: JSON list of the point names in forward order."""
import argparse
import copy
import json
import struct
import sys
import time
import warnings

import numpy as np
import torch
import torch.ao.nn.quantized as nnq
import torch.ao.quantization as tq
import torch.nn as nn

import tfsepnet23
import tfsepnet64
from reference import AdaResNorm, ConvBn, ResNorm, perturb

ST_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
             torch.uint8: "U8", torch.int8: "I8"}
NP_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8,
             "I8": np.int8, "F16": np.float16}


def save_safetensors(path, tensors, metadata=None):
    """Writes tensors in their own dtype (F32, F64, I64, I32, U8, I8)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for k in sorted(tensors):
        t = tensors[k].detach().contiguous().cpu()
        b = t.numpy().astype(np.dtype(NP_DTYPES[ST_DTYPES[t.dtype]]).newbyteorder("<")).tobytes()
        header[k] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        a = np.frombuffer(data[start:end], dtype=np.dtype(NP_DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = torch.from_numpy(a.reshape(info["shape"]).copy())
    return out


# ---------------------------------------------------------------------------------------------
# The quantizable model: the float net's modules at the same paths, with stubs and FloatFunctionals.
# Modules whose output is an activation point carry `point = True`; the point is their path.

class QUnit(nn.Module):
    """A ConvBn (or a bare conv) as a fusable conv [+ bn] [+ relu]."""
    point = True

    def __init__(s, conv, bn=None, relu=False, names=("conv", "bn")):
        super().__init__()
        s.names = names
        setattr(s, names[0], conv)
        setattr(s, names[1], bn)
        s.relu = nn.ReLU() if relu else None
    def fuse_list(s, path):
        group = [f"{path}.{s.names[0]}"]
        if getattr(s, s.names[1]) is not None:
            group.append(f"{path}.{s.names[1]}")
        if s.relu is not None:
            group.append(f"{path}.relu")
        return group if len(group) > 1 else None
    def conv_module(s):
        return getattr(s, s.names[0])
    def forward(s, x):
        x = getattr(s, s.names[0])(x)
        bn = getattr(s, s.names[1])
        if bn is not None:
            x = bn(x)
        return s.relu(x) if s.relu is not None else x

def qunit(cb):
    """QUnit of a reference ConvBn (its modules, shared)."""
    conv, bn = (getattr(cb, n) for n in cb.names)
    return QUnit(conv, bn, cb.relu, cb.names)

class QNorm(nn.Module):
    """A ResNorm/AdaResNorm run in float: dequantize, norm, quantize (its own observer)."""
    point = True

    def __init__(s, norm):
        super().__init__()
        s.dequant = tq.DeQuantStub()
        s.norm = norm
        s.quant = tq.QuantStub()
    def forward(s, x):
        return s.quant(s.norm(s.dequant(x)))

class QAdd(nn.Module):
    point = True

    def __init__(s):
        super().__init__()
        s.ff = nnq.FloatFunctional()
    def forward(s, a, b):
        return s.ff.add(a, b)

class QCat(nn.Module):
    point = True

    def __init__(s):
        super().__init__()
        s.ff = nnq.FloatFunctional()
    def forward(s, xs):
        return s.ff.cat(xs, 1)

class Means:
    """Collects the quantized means (`mean/<source point>`) of a forward pass when `on`."""

    def __init__(s):
        s.on, s.out = False, {}
    def __call__(s, source, dims, y):
        if s.on:
            s.out[source] = (dims, y)
        return y


class QTfSepConv(nn.Module):
    def __init__(s, blk, path, means):
        super().__init__()
        s.path, s.means = path, means
        s.trans_conv = qunit(blk.trans_conv) if blk.trans_conv is not None else None
        s.g, s.h = blk.g, blk.h
        s.freq_dw_conv, s.freq_pw_conv = qunit(blk.freq_dw_conv), qunit(blk.freq_pw_conv)
        s.temp_dw_conv, s.temp_pw_conv = qunit(blk.temp_dw_conv), qunit(blk.temp_pw_conv)
        s.drop = blk.drop
        s.freq_add, s.time_add, s.cat = QAdd(), QAdd(), QCat()
    def forward(s, x):
        if s.trans_conv is not None:
            x = s.trans_conv(x)
        b, c, f, t = x.shape
        g = s.g
        x = x.reshape(b, c // g, g, f, t).permute(0, 2, 1, 3, 4).reshape(b, c, f, t)
        x1, x2 = torch.split(x, s.h, dim=1)
        m1 = s.means(f"{s.path}.freq_dw_conv", (2,), s.freq_dw_conv(x1).mean(2, keepdim=True))
        y1 = s.freq_add(s.drop(s.freq_pw_conv(m1)), x1)
        m2 = s.means(f"{s.path}.temp_dw_conv", (3,), s.temp_dw_conv(x2).mean(3, keepdim=True))
        y2 = s.time_add(s.drop(s.temp_pw_conv(m2)), x2)
        return s.cat([y1, y2])


def qnorm_or_pool(m):
    if isinstance(m, (ResNorm, AdaResNorm)):
        return QNorm(m)
    assert isinstance(m, nn.MaxPool2d), type(m)
    return m


class QTfSepNet64(nn.Module):
    def __init__(s, net):
        super().__init__()
        s.means = Means()
        s.input = tq.QuantStub()
        s.conv_layers = nn.Sequential(*[qunit(u) for u in net.conv_layers])
        s.middle_layers = nn.Sequential(*[
            QTfSepConv(m, f"middle_layers.{i}", s.means) if isinstance(m, tfsepnet23.TfSepConv) else qnorm_or_pool(m)
            for i, m in enumerate(net.middle_layers)])
        s.classifier = QUnit(net.classifier.conv)
        s.dequant = tq.DeQuantStub()
    def forward(s, x):
        x = s.middle_layers(s.conv_layers(s.input(x)))
        return s.dequant(s.means("classifier", (2, 3), s.classifier(x).mean((-1, -2))))


class QStage(nn.Module):
    def __init__(s, st, path, means):
        super().__init__()
        s.n = st.n
        for j in range(st.n):
            setattr(s, f"block{j}", QTfSepConv(getattr(st, f"block{j}"), f"{path}.block{j}", means))
        s.norm = QNorm(st.norm)
        s.pool = st.pool
    def forward(s, x):
        for j in range(s.n):
            x = getattr(s, f"block{j}")(x)
        x = s.norm(x)
        return s.pool(x) if s.pool is not None else x


class QTfSepNet23(nn.Module):
    def __init__(s, net):
        super().__init__()
        s.means = Means()
        s.input = tq.QuantStub()
        s.stem = qunit(net.stem)
        s.stem_norm = QNorm(net.stem_norm)
        for i in range(1, 5):
            setattr(s, f"stage{i}", QStage(getattr(net, f"stage{i}"), f"stage{i}", s.means))
        s.head = qunit(net.head)
        s.dequant = tq.DeQuantStub()
    def forward(s, x):
        x = s.stem_norm(s.stem(s.input(x)))
        x = s.stage4(s.stage3(s.stage2(s.stage1(x))))
        return s.dequant(s.means("head", (2, 3), s.head(x).mean(dim=(2, 3))))


# ---------------------------------------------------------------------------------------------

def build_float(arch, lam=0.1, groups=None, num_classes=10):
    """The float net of `arch` (["tfsepnet64", W, D] or ["tfsepnet23", W, ada|res]; `lam` and
    `groups` are tfsepnet23's), eval mode."""
    kind, width, third = arch[0], int(arch[1]), arch[2]
    if kind == "tfsepnet64":
        net = tfsepnet64.TfSepNet64(width, int(third), dropout=0.0, num_classes=num_classes)
    elif kind == "tfsepnet23":
        if third not in ("ada", "res"):
            sys.exit(f"tfsepnet23 norm must be ada or res, got {third!r}")
        net = tfsepnet23.Net(width, third, lam, groups)
        if num_classes != 10:
            net.head = ConvBn(net.head.conv.in_channels, num_classes, 1, bn=False, relu=False, bias=True)
    else:
        sys.exit(f"unknown architecture {kind!r} (tfsepnet64 WIDTH DEPTH or tfsepnet23 WIDTH ada|res)")
    return net.eval()


def read_weights(path):
    """The state dict in `path` (float32) and its number of classes (the head's output channels)."""
    state = {k: v.float() for k, v in load_safetensors(path).items()}
    heads = [state[k] for k in ("classifier.conv.weight", "head.conv.weight") if k in state]
    return state, (heads[0].shape[0] if heads else 10)


def load_weights(net, state, path):
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"weights {path}: missing {missing}, unexpected {unexpected}")


def qconfig(observer):
    if observer == "histogram":
        return tq.get_default_qconfig("fbgemm")
    if observer == "minmax":
        return tq.QConfig(activation=tq.MinMaxObserver.with_args(reduce_range=True),
                          weight=tq.default_per_channel_weight_observer)
    sys.exit(f"unknown observer {observer!r} (histogram or minmax)")


def quantizable(net):
    """The quantizable model of float `net` (a deep copy; unfused, float)."""
    net = copy.deepcopy(net)
    q = QTfSepNet64(net) if isinstance(net, tfsepnet64.TfSepNet64) else QTfSepNet23(net)
    return q.eval()


def quantize(net, calibration, observer="histogram", batch=32):
    """Eager PTQ of float `net`: fuse, prepare, calibrate on `calibration` [N,1,F,T], convert."""
    q = quantizable(net)
    fuse = [g for p, m in q.named_modules() if isinstance(m, QUnit) for g in [m.fuse_list(p)] if g]
    tq.fuse_modules(q, fuse, inplace=True)
    q.qconfig = qconfig(observer)
    tq.prepare(q, inplace=True)
    with torch.no_grad():
        for i in range(0, calibration.shape[0], batch):
            q(calibration[i:i + batch])
    tq.convert(q, inplace=True)
    return q


def points_of(q):
    """(path, module) of every activation-point module of a quantizable model, in definition order
    (the input QuantStub is `input`: convert swaps modules by exact type, so it is not marked)."""
    return [(p, m) for p, m in q.named_modules() if p == "input" or getattr(m, "point", False)]


def memory_format(t):
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return "channels_last"
    return "contiguous" if t.is_contiguous() else "strided"


def run_recorded(q, x):
    """Runs converted `q` on `x` with hooks: (logits, [(point, module inputs, quantized output)] in
    forward order, {source point: quantized mean})."""
    rec = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, p=p: rec.append((p, inp, out))) for p, m in points_of(q)]
    q.means.on, q.means.out = True, {}
    try:
        with torch.no_grad():
            logits = q(x)
    finally:
        for h in hooks:
            h.remove()
        q.means.on = False
    return logits, rec, q.means.out


def conv_units(q):
    """(unit path, quantized conv module) of every conv unit of converted `q`."""
    return [(p, m.conv_module()) for p, m in q.named_modules() if isinstance(m, QUnit)]


def dump(net, q, x, observer):
    """(tensors, metadata, point names in forward order) of the converted `q` on `x`."""
    with torch.no_grad():
        logits_f = net(x)
    logits_q, rec, means = run_recorded(q, x)
    out, meta, names = {"logits_q": logits_q.float(), "logits_f": logits_f.float()}, {}, []
    for p, _, t in rec:
        if p in names:
            sys.exit(f"point {p} reached twice")
        names.append(p)
        out[f"act/{p}"] = t.int_repr().contiguous()
        out[f"scale/{p}"] = torch.tensor(t.q_scale(), dtype=torch.float64)
        out[f"zp/{p}"] = torch.tensor(t.q_zero_point(), dtype=torch.int64)
        meta[f"format/{p}"] = memory_format(t)
    for p, (_, t) in means.items():
        out[f"mean/{p}"] = t.int_repr().contiguous()
    for p, conv in conv_units(q):
        w = conv.weight()
        assert w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric) and bool((w.q_per_channel_zero_points() == 0).all())
        out[f"weight/{p}"] = w.int_repr().contiguous()
        out[f"wscale/{p}"] = w.q_per_channel_scales().to(torch.float64)
        b = conv.bias()
        if b is not None:
            out[f"bias/{p}"] = b.detach().float()
    meta.update(observer=observer, torch=torch.__version__, engine=torch.backends.quantized.engine)
    return out, meta, names


def setup():
    torch.backends.quantized.engine = "fbgemm"
    torch.set_num_threads(1)
    # torch.ao.quantization's deprecation notice and the observers' reduce_range notice. (The
    # broadcasting residual adds also make ATen print "An output ... was resized" on stderr: the
    # quantized add allocates its output like its first operand, the [B, C, 1, T] pointwise output.)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="Please use quant_min and quant_max")


# ---------------------------------------------------------------------------------------------
# Self-check

def expected_points(net):
    """The point names of float `net`, in forward order, from its structure alone."""
    names = ["input"]

    def block(b, p):
        if b.trans_conv is not None:
            names.append(f"{p}.trans_conv")
        names.extend([f"{p}.freq_dw_conv", f"{p}.freq_pw_conv", f"{p}.freq_add",
                      f"{p}.temp_dw_conv", f"{p}.temp_pw_conv", f"{p}.time_add", f"{p}.cat"])

    if isinstance(net, tfsepnet64.TfSepNet64):
        names += ["conv_layers.0", "conv_layers.1"]
        for i, m in enumerate(net.middle_layers):
            if isinstance(m, tfsepnet23.TfSepConv):
                block(m, f"middle_layers.{i}")
            elif isinstance(m, ResNorm):
                names.append(f"middle_layers.{i}")
        names.append("classifier")
    else:
        names += ["stem", "stem_norm"]
        for i in range(1, 5):
            st = getattr(net, f"stage{i}")
            for j in range(st.n):
                block(getattr(st, f"block{j}"), f"stage{i}.block{j}")
            names.append(f"stage{i}.norm")
        names.append("head")
    return names


def check_means(rec, means):
    """Every quantized mean against dequantize -> float32 mean -> quantize on the input's grid (what
    PyTorch's quantized mean does for a non-contiguous input such as a conv's channels-last output).
    For information, against the exact mean (integer sum of q - zp over n, rounded half to even, +
    zp): its differences, and those of them not at an exact tie (sum of q - zp an odd multiple of n/2),
    where float rounding noise alone cannot explain them. Returns a dict of counts."""
    src = {p: out for p, _, out in rec}
    c = dict(means=0, elements=0, differ=0, worst=0, differ_exact=0, differ_exact_not_tie=0, ties=0)
    for p, (dims, y) in means.items():
        x = src[p]
        keep = y.dim() == 4
        grid = (x.q_scale(), x.q_zero_point(), torch.quint8)
        assert (y.q_scale(), y.q_zero_point()) == grid[:2], p
        ref = torch.quantize_per_tensor(x.dequantize().mean(dims, keepdim=keep), *grid)
        n = 1
        for d in dims:
            n *= x.shape[d]
        total = (x.int_repr().long() - grid[1]).sum(dims, keepdim=keep)
        exact = (torch.round(total.double() / n) + grid[1]).clamp(0, 255).int()
        tie = (2 * total) % (2 * n) == n
        got = y.int_repr().int()
        d = (got - ref.int_repr().int()).abs()
        c["means"] += 1
        c["elements"] += got.numel()
        c["differ"] += int((d > 0).sum())
        c["worst"] = max(c["worst"], int(d.max()))
        c["differ_exact"] += int((got != exact).sum())
        c["differ_exact_not_tie"] += int(((got != exact) & ~tie).sum())
        c["ties"] += int(tie.sum())
    return c


def check_merges(rec):
    """Every add and concat against dequantize -> float add/cat -> quantize on the output's grid (the
    freq/time adds broadcast the pointwise conv's [B, C, 1, T] / [B, C, F, 1] over the identity).
    Returns (points checked, differing elements, largest difference in steps)."""
    checked = bad = worst = 0
    for p, inp, y in rec:
        if p.endswith(("_add", ".cat")):
            parts = inp[0] if p.endswith(".cat") else inp
            f = [t.dequantize() for t in parts]
            v = torch.cat(f, 1) if p.endswith(".cat") else f[0] + f[1]
            ref = torch.quantize_per_tensor(v, y.q_scale(), y.q_zero_point(), torch.quint8)
            assert ref.shape == y.shape, (p, ref.shape, y.shape)
            d = (y.int_repr().int() - ref.int_repr().int()).abs()
            checked += 1
            bad += int((d > 0).sum())
            worst = max(worst, int(d.max()))
    return checked, bad, worst


def selfcheck_one(arch, observer, seed=0):
    torch.manual_seed(seed)
    net = build_float(arch)
    perturb(net)
    f, t = (512, 64) if arch[0] == "tfsepnet64" else (128, 44)
    f, t = f // 2, t
    cal = torch.randn(16, 1, f, t)
    x = torch.randn(3, 1, f, t)
    # The quantizable model, unfused and in float, is the float net.
    with torch.no_grad():
        same = torch.equal(quantizable(net)(x), net(x))
    q = quantize(net, cal, observer)
    out, meta, names = dump(net, q, x, observer)
    _, rec, means = run_recorded(q, x)
    want = expected_points(net)
    err = (out["logits_q"] - out["logits_f"]).abs().max().item()
    span = out["logits_f"].abs().max().item()
    mc = check_means(rec, means)
    m_checked, m_bad, m_worst = check_merges(rec)
    formats = {}
    for p in names:
        formats.setdefault(meta[f"format/{p}"], []).append(p)
    n_convs = sum(1 for k in out if k.startswith("weight/"))
    print(f"{' '.join(arch)} ({observer}): {len(names)} points, {n_convs} convs; max |logits_q - logits_f| "
          f"{err:.4g} (max |logits_f| {span:.4g}); means {mc['means']} checked, {mc['differ']} of "
          f"{mc['elements']} elements differ from dequantize-mean-quantize (max {mc['worst']} steps), "
          f"{mc['differ_exact']} from the exact mean ({mc['differ_exact_not_tie']} not at one of its "
          f"{mc['ties']} ties); adds/cats {m_checked} checked, {m_bad} elements differ (max {m_worst}); formats: " + ", ".join(f"{k} {len(v)}" for k, v in formats.items()))
    ok = True
    if names != want:
        print(f"  FAIL points: got {names}\n  want {want}")
        ok = False
    if not same:
        print("  FAIL the quantizable model in float differs from the float net")
        ok = False
    if mc["differ"]:
        print("  FAIL quantized mean differs from dequantize -> mean -> quantize")
        ok = False
    if m_bad:
        print("  NOTE quantized add/cat differs from dequantize -> add/cat -> quantize")
    if not err < 0.25 * max(span, 1e-6):
        print("  FAIL quantized logits far from float logits")
        ok = False
    for k, v in formats.items():
        if k != "channels_last":
            print(f"  {k}: {v}")
    return ok


def selfcheck(arch):
    setup()
    archs = [arch] if arch else [["tfsepnet64", "8", "17"], ["tfsepnet64", "16", "16"],
                                 ["tfsepnet23", "8", "ada"], ["tfsepnet23", "8", "res"]]
    ok = all([selfcheck_one(a, obs) for a in archs for obs in ("histogram", "minmax")])
    print("selfcheck", "passed" if ok else "FAILED")
    sys.exit(0 if ok else 1)


# ---------------------------------------------------------------------------------------------
# Bench peer (protocol of bench_tfsepnet64.py)

def bench(mode, freq, frames, observer):
    setup()
    torch.manual_seed(0)
    net = build_float(["tfsepnet64", "64", "17"])
    perturb(net)
    x = torch.randn(1, 1, freq, frames)
    if mode == "int8":
        model = quantize(net, torch.randn(32, 1, freq, frames), observer, batch=8)
    elif mode == "float":
        model = net
    else:
        sys.exit(f"unknown bench mode {mode!r} (int8 or float)")

    def work():
        with torch.no_grad():
            model(x)

    for line in sys.stdin:
        cmd, arg = line.split()
        if cmd == "warmup":
            for _ in range(int(arg)):
                work()
            print("ok", flush=True)
        elif cmd == "round":
            t0 = time.process_time()
            calls = 0
            while calls == 0 or time.process_time() - t0 < float(arg):
                work()
                calls += 1
            rate = calls / (time.process_time() - t0)
            print(json.dumps({"rate": rate, "threads": torch.get_num_threads()}), flush=True)
        else:
            sys.exit(f"unknown command {line!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("arch", nargs="*", help="tfsepnet64 WIDTH DEPTH | tfsepnet23 WIDTH ada|res")
    ap.add_argument("--weights")
    ap.add_argument("--data")
    ap.add_argument("--out")
    ap.add_argument("--points")
    ap.add_argument("--observer", default="histogram", choices=["histogram", "minmax"])
    ap.add_argument("--lam", type=float, default=0.1, help="tfsepnet23's ResNorm lambda")
    ap.add_argument("--groups", type=int, default=0, help="tfsepnet23's shuffle groups (0: half)")
    ap.add_argument("--selfcheck", action="store_true")
    ap.add_argument("--bench", choices=["int8", "float"])
    ap.add_argument("--freq", type=int, default=512)
    ap.add_argument("--time", type=int, default=64)
    a = ap.parse_args()
    if a.arch and len(a.arch) != 3:
        ap.error("ARCH is tfsepnet64 WIDTH DEPTH or tfsepnet23 WIDTH ada|res")
    if a.selfcheck:
        selfcheck(a.arch)
    if a.bench:
        bench(a.bench, a.freq, a.time, a.observer)
        return
    if not (a.arch and a.weights and a.data and a.out):
        ap.error("ARCH, --weights, --data and --out are required")
    setup()
    state, classes = read_weights(a.weights)
    net = build_float(a.arch, a.lam, a.groups or None, classes)
    load_weights(net, state, a.weights)
    data = load_safetensors(a.data)
    q = quantize(net, data["calibration"].float(), a.observer)
    out, meta, names = dump(net, q, data["test"].float(), a.observer)
    save_safetensors(a.out, out, meta)
    if a.points:
        with open(a.points, "w") as f:
            json.dump(names, f, indent=0)


if __name__ == "__main__":
    main()
