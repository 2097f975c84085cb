"""Reference outputs of PyTorch's quantized CPU kernels (fbgemm engine, one thread) for
tests/int8_kernels.rs. Usage: int8_kernels.py OUT_DIR; writes OUT_DIR/cases.json: the ATen
capability and, per case, the op, its parameters, its integer inputs and PyTorch's output.
INT8_KERNELS_MEAN_SWEEP (default 32) sets how many random `mean` cases follow the fixed ones."""
import json
import os
import sys

import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.nn.functional as F

torch.backends.quantized.engine = "fbgemm"
torch.set_num_threads(1)
gen = torch.Generator().manual_seed(20240611)


def f32(v):
    """A float32-representable scale (PyTorch keeps scales as double, kernels use float)."""
    return float(torch.tensor(v, dtype=torch.float32))


def qtensor(shape, scale, zp, lo=0, hi=255, channels_last=False):
    ints = torch.randint(lo, hi + 1, shape, generator=gen, dtype=torch.uint8)
    q = torch._make_per_tensor_quantized_tensor(ints, f32(scale), zp)
    if channels_last:
        q = q.contiguous(memory_format=torch.channels_last)
    return q


def suggests_channels_last(t):
    """c10's is_channels_last_strides_2d, behind `suggest_memory_format()`."""
    if t.dim() != 4 or t.stride(1) == 0:
        return False
    least = 0
    for d in (1, 3, 2, 0):
        if t.shape[d] == 0 or t.stride(d) < least or (d == 0 and least == t.stride(1)):
            return False
        least = t.stride(d) * max(t.shape[d], 1)
    return True


def enc(q, suggested=False):
    """`format`: channels_last for a channels-last tensor that is not NCHW-contiguous too, or
    with `suggested`, whenever `suggest_memory_format()` says channels-last."""
    if suggested:
        cl = suggests_channels_last(q)
    else:
        cl = q.dim() == 4 and q.is_contiguous(memory_format=torch.channels_last) and not q.is_contiguous()
    return {
        "data": q.int_repr().contiguous().flatten().tolist(),
        "shape": list(q.shape),
        "scale": q.q_scale(),
        "zp": q.q_zero_point(),
        "format": "channels_last" if cl else "contiguous",
    }


def qweight(shape, wmax=127):
    ints = torch.randint(-wmax, wmax + 1, shape, generator=gen, dtype=torch.int8)
    # One extreme weight per channel, as a symmetric per-channel observer produces.
    flat = ints.view(shape[0], -1)
    flat[:, 0] = torch.where(torch.rand(shape[0], generator=gen) < 0.5, -min(wmax + 1, 128), wmax).to(torch.int8)
    scales = (torch.rand(shape[0], generator=gen) * 0.02 + 0.001).to(torch.float32).double()
    w = torch._make_per_channel_quantized_tensor(ints, scales, torch.zeros(shape[0], dtype=torch.long), 0)
    return w, ints, scales


def bias_of(n, on):
    return (torch.randn(n, generator=gen) * 0.5).to(torch.float32) if on else None


cases = []


def conv_case(name, n, c, h, w, o, k, stride, pad, groups, bias, relu, x_range=(0, 127),
              x_q=(0.05, 3), out_q=(0.1, 60), wmax=127):
    x = qtensor((n, c, h, w), x_q[0], x_q[1], *x_range)
    wq, ints, scales = qweight((o, c // groups) + tuple(k), wmax)
    b = bias_of(o, bias)
    cls = nniq.ConvReLU2d if relu else nnq.Conv2d
    m = cls(c, o, tuple(k), stride=tuple(stride), padding=tuple(pad), groups=groups, bias=bias)
    m.set_weight_bias(wq, b)
    m.scale, m.zero_point = f32(out_q[0]), out_q[1]
    y = m(x)
    cases.append({
        "name": name, "op": "conv2d", "x": enc(x),
        "w": {"data": ints.flatten().tolist(), "shape": list(ints.shape), "scales": scales.tolist(),
              "bias": None if b is None else b.tolist()},
        "stride": list(stride), "padding": list(pad), "groups": groups, "relu": relu,
        "out": enc(y),
    })


conv_case("depthwise_3x1_stride_2_1", 2, 32, 20, 9, 32, (3, 1), (2, 1), (1, 0), 32, True, True)
conv_case("depthwise_1x3_stride_1_2", 2, 32, 10, 17, 32, (1, 3), (1, 2), (0, 1), 32, True, False)
conv_case("depthwise_3x3_relu", 1, 16, 9, 11, 16, (3, 3), (1, 1), (1, 1), 16, False, True)
conv_case("depthwise_3x3_stride_2", 1, 24, 13, 12, 24, (3, 3), (2, 2), (1, 1), 24, True, False)
conv_case("pointwise_1x1_relu", 2, 24, 8, 13, 40, (1, 1), (1, 1), (0, 0), 1, True, True)
conv_case("pointwise_1x1_no_bias", 1, 36, 5, 7, 20, (1, 1), (1, 1), (0, 0), 1, False, False)
conv_case("grouped_3x3_stride_2", 1, 16, 11, 10, 24, (3, 3), (2, 2), (1, 1), 4, False, False)
conv_case("dense_3x3", 1, 8, 9, 9, 12, (3, 3), (1, 1), (1, 1), 1, True, False)
conv_case("dense_5x5_no_pad", 1, 6, 12, 10, 7, (5, 5), (1, 1), (0, 0), 1, True, True)
conv_case("dense_3x1_stride_2_1_pad", 2, 10, 15, 6, 9, (3, 1), (2, 1), (2, 0), 1, True, True)
# Full-range activations: with |w| <= 64 no u8 x i8 pair sum reaches the i16 limit, whichever
# pairs fbgemm's kernel forms, so PyTorch's output is the exact one on every x86 CPU.
conv_case("full_range_pointwise", 1, 20, 6, 9, 12, (1, 1), (1, 1), (0, 0), 1, True, False,
          x_range=(0, 255), x_q=(0.02, 128), wmax=63)
conv_case("full_range_depthwise_3x1", 1, 16, 12, 5, 16, (3, 1), (1, 1), (1, 0), 16, True, True,
          x_range=(0, 255), x_q=(0.02, 200), wmax=63)
# Output scale so small that multipliers exceed 1 and most outputs saturate.
conv_case("multiplier_above_one", 1, 8, 6, 6, 8, (3, 3), (1, 1), (1, 1), 1, True, False,
          x_q=(0.5, 64), out_q=(0.0005, 128))
conv_case("zero_points_at_extremes", 1, 8, 7, 7, 8, (3, 1), (1, 1), (1, 0), 8, True, False,
          x_range=(0, 255), x_q=(0.05, 255), out_q=(0.05, 255), wmax=63)
conv_case("zero_point_zero_relu", 1, 8, 7, 7, 8, (1, 3), (1, 1), (0, 1), 8, True, True,
          x_q=(0.05, 0), out_q=(0.05, 0))


def linear_case(name, n, i, o, bias, relu, x_q=(0.04, 10), out_q=(0.2, 70)):
    x = qtensor((n, i), x_q[0], x_q[1], 0, 127)
    wq, ints, scales = qweight((o, i))
    b = bias_of(o, bias)
    m = nniq.LinearReLU(i, o, bias=bias) if relu else nnq.Linear(i, o, bias_=bias)
    m.set_weight_bias(wq, b)
    m.scale, m.zero_point = f32(out_q[0]), out_q[1]
    y = m(x)
    cases.append({
        "name": name, "op": "linear", "x": enc(x),
        "w": {"data": ints.flatten().tolist(), "shape": list(ints.shape), "scales": scales.tolist(),
              "bias": None if b is None else b.tolist()},
        "relu": relu, "out": enc(y),
    })


linear_case("linear", 7, 50, 10, True, False)
linear_case("linear_relu_no_bias", 20, 33, 17, False, True)


def pool_case(name, op, x, kernel, stride, pad, ceil_mode=False, count_include_pad=True):
    if op == "max_pool2d":
        y = F.max_pool2d(x, kernel, stride, pad, ceil_mode=ceil_mode)
    else:
        y = F.avg_pool2d(x, kernel, stride, pad, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    cases.append({"name": name, "op": op, "x": enc(x), "kernel": list(kernel), "stride": list(stride),
                  "padding": list(pad), "ceil_mode": ceil_mode, "count_include_pad": count_include_pad,
                  "out": enc(y)})


pool_case("max_pool_2x2", "max_pool2d", qtensor((2, 5, 8, 9), 0.1, 5), (2, 2), (2, 2), (0, 0))
pool_case("max_pool_3x3_ceil_channels_last", "max_pool2d",
          qtensor((1, 6, 9, 10), 0.1, 5, channels_last=True), (3, 3), (2, 2), (1, 1), ceil_mode=True)
pool_case("avg_pool_3x3_pad", "avg_pool2d", qtensor((2, 6, 7, 9), 0.1, 37), (3, 3), (1, 1), (1, 1))
pool_case("avg_pool_2x2_odd_zero_point", "avg_pool2d", qtensor((1, 5, 8, 8), 0.1, 13), (2, 2), (2, 2), (0, 0))
pool_case("avg_pool_3x3_exclude_pad", "avg_pool2d", qtensor((1, 4, 7, 6), 0.1, 20), (3, 3), (2, 2), (1, 1),
          count_include_pad=False)
# 20 channels: a vectorised block of 8 or 16 channels and a scalar tail.
pool_case("avg_pool_3x3_channels_last", "avg_pool2d",
          qtensor((1, 20, 7, 9), 0.1, 37, channels_last=True), (3, 3), (1, 1), (1, 1))
pool_case("avg_pool_2x2_channels_last", "avg_pool2d",
          qtensor((2, 21, 6, 8), 0.1, 13, channels_last=True), (2, 2), (2, 2), (0, 0))

for name, cl in [("adaptive_avg_pool", False), ("adaptive_avg_pool_channels_last", True)]:
    x = qtensor((2, 20, 7, 13), 0.1, 31, channels_last=cl)
    cases.append({"name": name, "op": "adaptive_avg_pool2d", "x": enc(x), "out": enc(F.adaptive_avg_pool2d(x, 1))})


def add_case(name, shape, qa, qb, qo, relu, formats=(False, False)):
    a = qtensor(shape, *qa, channels_last=formats[0])
    b = qtensor(shape, *qb, channels_last=formats[1])
    op = torch.ops.quantized.add_relu if relu else torch.ops.quantized.add
    y = op(a, b, f32(qo[0]), qo[1])
    cases.append({"name": name, "op": "add", "a": enc(a), "b": enc(b), "relu": relu, "out": enc(y)})


add_case("add", (2, 20, 9, 7), (0.031, 60), (0.047, 70), (0.066, 64), False)
add_case("add_relu_channels_last", (2, 20, 9, 7), (0.031, 60), (0.047, 70), (0.066, 64), True, (True, True))
add_case("add_mixed_formats", (1, 12, 9, 11), (0.031, 60), (0.047, 70), (0.066, 64), False, (True, False))
# Power-of-two scales put many sums exactly halfway between two output steps.
add_case("add_ties", (3, 16, 10, 9), (0.0625, 61), (0.0625, 3), (0.125, 77), False)
add_case("add_ties_channels_last", (3, 16, 10, 9), (0.0625, 61), (0.0625, 3), (0.125, 77), False, (True, True))

xs = torch.randn(4000, generator=gen) * 3
# Exact halves of the step, to tell rounding before and after adding the zero point apart.
xs[:400] = (torch.arange(400) - 200).float() * 0.125 + 0.0625
xs[400:410] = torch.tensor([1e10, -1e10, 0.0, -0.0, 1e-30, 127.9, 128.1, -300.0, 300.0, 5.0])
for name, (scale, zp) in [("quantize", (0.125, 11)), ("quantize_zero_point_0", (0.037, 0)),
                          ("quantize_zero_point_255", (0.05, 255))]:
    q = torch.quantize_per_tensor(xs, f32(scale), zp, torch.quint8)
    cases.append({"name": name, "op": "quantize", "input": xs.tolist(), "scale": f32(scale), "zp": zp,
                  "out": enc(q), "dequantized_bits": q.dequantize().view(torch.int32).tolist(),
                  "relu": enc(torch.relu(q))})



def mean_case(name, shape, dims, keepdim, channels_last, q=(0.05, 37)):
    """`torch.mean(x, dims, keepdim)`. Channels-last inputs have a conv output's strides (also
    for one channel or one pixel, where `.contiguous(memory_format=...)` would keep NCHW ones),
    and formats are the suggested ones. Where PyTorch refuses, the case records its error."""
    ints = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    x = torch._make_per_tensor_quantized_tensor(ints, f32(q[0]), q[1])
    if channels_last:
        x = torch._empty_affine_quantized(shape, scale=f32(q[0]), zero_point=q[1], dtype=torch.quint8,
                                          memory_format=torch.channels_last).copy_(x)
        assert torch.equal(x.int_repr(), ints)
    case = {"name": name, "op": "mean", "x": enc(x, suggested=True), "dims": list(dims), "keepdim": keepdim}
    try:
        case["out"] = enc(torch.mean(x, dims, keepdim=keepdim), suggested=True)
    except RuntimeError as e:
        case["error"] = str(e).splitlines()[0]
    cases.append(case)


# TF-SepNet: a conv output's mean over frequency and over time, and a classifier head's global
# mean. T = 63, 64, 65: vectors of 8 floats and a remainder.
for t in (63, 64, 65):
    mean_case(f"mean_freq_channels_last_t{t}", (2, 20, 9, t), (2,), True, True)
    mean_case(f"mean_time_channels_last_t{t}", (2, 20, 9, t), (3,), True, True)
    mean_case(f"mean_head_channels_last_t{t}", (2, 20, 9, t), (-1, -2), False, True)
    mean_case(f"mean_freq_nchw_t{t}", (2, 20, 9, t), (2,), True, False)
    mean_case(f"mean_time_nchw_t{t}", (2, 20, 9, t), (3,), True, False)
    mean_case(f"mean_head_nchw_t{t}", (2, 20, 9, t), (2, 3), False, False)
mean_case("mean_freq_channels_last_f1", (1, 24, 1, 33), (2,), True, True)
mean_case("mean_time_channels_last_t1", (1, 24, 5, 1), (3,), True, True)
# 70 rows: ATen's cascade sum closes chunks of 16 rows.
mean_case("mean_freq_channels_last_f70", (1, 8, 70, 9), (2,), True, True)
mean_case("mean_time_channels_last_t300", (1, 8, 3, 300), (3,), True, True)
mean_case("mean_freq_nchw_f70", (1, 5, 70, 17), (2,), True, False)
mean_case("mean_head_keepdim_channels_last", (2, 16, 7, 65), (2, 3), True, True)
mean_case("mean_head_keepdim_nchw", (2, 16, 7, 65), (2, 3), True, False)
mean_case("mean_head_channels_last_32_channels", (1, 32, 4, 16), (2, 3), False, True)
# Power-of-two scales: many means lie exactly halfway between two steps.
mean_case("mean_freq_ties_channels_last", (2, 16, 4, 33), (2,), True, True, q=(0.0625, 61))
mean_case("mean_time_ties_nchw", (2, 8, 6, 2), (3,), True, False, q=(0.0625, 61))
mean_case("mean_head_ties_nchw", (2, 8, 2, 2), (2, 3), False, False, q=(0.0625, 61))
mean_case("mean_time_zero_point_0", (1, 12, 5, 40), (3,), True, True, q=(0.02, 0))
mean_case("mean_freq_zero_point_255", (1, 12, 5, 40), (2,), True, True, q=(0.02, 255))
# One channel or one pixel: channels-last and NCHW-contiguous at once, so ATen's fast path,
# which allocates its result channels-last (and cannot drop dims then).
mean_case("mean_time_one_channel_channels_last", (2, 1, 9, 17), (3,), True, True)
mean_case("mean_freq_one_channel_channels_last", (2, 1, 9, 17), (2,), True, True)
mean_case("mean_head_one_pixel_channels_last", (2, 12, 1, 1), (2, 3), True, True)
# Allocated channels-last, but [N, 1, 1, 1] suggests NCHW.
mean_case("mean_head_one_channel_channels_last", (2, 1, 9, 17), (2, 3), True, True)
mean_case("mean_head_one_pixel_channels_last_no_keepdim", (2, 12, 1, 1), (2, 3), False, True)
for i in range(int(os.environ.get("INT8_KERNELS_MEAN_SWEEP", "32"))):
    r = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=gen))
    t = [r(1, 80), (63, 64, 65, 127, 128, 129)[r(0, 5)]][r(0, 1)]
    shape = (r(1, 2), r(1, 40), r(1, 40), t)
    dims = [(2,), (3,), (2, 3), (-1, -2)][r(0, 3)]
    mean_case(f"mean_sweep_{i}", shape, dims, bool(r(0, 1)), bool(r(0, 1)), q=(0.01 + 0.1 * r(0, 9) / 9, r(0, 255)))

# Drawn after every other case, so that their inputs stay as they were.
# The shapes of TF-SepNet-64 (smaller planes), which the direct kernels take: a one-channel
# input to 32 channels and the grouped stem conv (4 outputs per input channel), stride 2; "same"
# 1x3 depthwise convs on rows of 16 and of 2; a channel multiplier of 2 with "same" padding; a
# 5x5 depthwise conv; a 1x1 conv with neither the channels a multiple of 4 nor the positions
# of 16.
conv_case("stem_one_channel_to_32", 1, 1, 40, 64, 32, (3, 3), (2, 2), (1, 1), 1, False, True)
conv_case("stem_grouped_4_per_channel", 1, 8, 20, 32, 32, (3, 3), (2, 2), (1, 1), 8, False, True)
conv_case("depthwise_1x3_rows_of_16", 1, 16, 12, 16, 16, (1, 3), (1, 1), (0, 1), 16, False, True)
conv_case("depthwise_1x3_rows_of_2", 2, 16, 9, 2, 16, (1, 3), (1, 1), (0, 1), 16, True, False)
conv_case("depthwise_3x1_rows_of_8", 1, 24, 16, 8, 24, (3, 1), (1, 1), (1, 0), 24, False, True)
conv_case("multiplier_2_3x3_same", 1, 6, 9, 20, 12, (3, 3), (1, 1), (1, 1), 6, True, True)
conv_case("depthwise_5x5_stride_2", 1, 8, 13, 11, 8, (5, 5), (2, 2), (2, 2), 8, True, False)
conv_case("pointwise_1x1_odd_sizes", 1, 37, 5, 7, 21, (1, 1), (1, 1), (0, 0), 1, True, True)

json.dump({"capability": torch.backends.cpu.get_cpu_capability(), "cases": cases},
          open(sys.argv[1] + "/cases.json", "w"))
