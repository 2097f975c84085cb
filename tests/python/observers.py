"""Reference qparams of PyTorch's activation observers for tests/observers.rs.

Usage: observers.py OUT_DIR; writes OUT_DIR/cases.json. Each case is a list of float32 batches
fed in order to MinMaxObserver and HistogramObserver (quint8, per_tensor_affine, reduce_range
True and False); per case it holds the batches, each observer's scale (float32, as a float) and
zero point, and, to locate a difference, the HistogramObserver's final histogram, its range and
the range its _non_linear_param_search picks. Float32 values are written as Python floats, whose
repr round-trips exactly."""
import json
import sys
import warnings

import numpy as np
import torch
from torch.ao.quantization.observer import HistogramObserver, MinMaxObserver

warnings.filterwarnings("ignore")  # reduce_range's deprecation notice
torch.set_num_threads(1)
rng = np.random.default_rng(20240612)


def f32(a):
    return np.asarray(a, dtype=np.float32).ravel()


def normal(n, mean=0.0, std=1.0):
    return f32(rng.normal(mean, std, n))


cases = {}
cases["normal"] = [normal(2000, 0.3, 1.2) for _ in range(3)]
cases["laplace"] = [f32(rng.laplace(0.0, 0.5, 3000)) for _ in range(2)]
cases["exp_heavy"] = [f32(np.exp(rng.normal(0.0, 1.5, 2500))) for _ in range(2)]
cases["relu"] = [f32(np.maximum(rng.normal(-0.3, 1.0, 2000), 0.0)) for _ in range(4)]
cases["constant"] = [f32(np.full(500, 1.5)) for _ in range(2)]
cases["zeros"] = [f32(np.zeros(700))]
cases["constant_then_normal"] = [f32(np.full(500, 0.75)), normal(2000)]
cases["growing_shrinking"] = [
    normal(1500, mean, scale)
    for mean, scale in [(0.0, 1.0), (1.0, 4.0), (0.0, 0.5), (-3.0, 12.0), (0.5, 2.0), (0.0, 0.1)]
]
cases["inside_range"] = [f32(rng.uniform(-5.0, 5.0, 2000))] + [
    f32(np.clip(rng.normal(0.0, 0.5, 2000), -4.9, 4.9)) for _ in range(3)
]
cases["wide_then_narrow"] = [f32(rng.uniform(-1e3, 1e3, 1000)), normal(3000, 0.0, 0.01)]
cases["outliers"] = [np.concatenate([normal(4000), f32([50.0, -37.5, 49.0])]), normal(3000)]
cases["negative"] = [-f32(np.exp(rng.normal(0.0, 1.0, 2000))) for _ in range(2)]
cases["offset_narrow"] = [normal(2000, 1000.0, 1e-3) for _ in range(2)]
cases["tiny"] = [f32([0.1, -0.2, 0.35]), f32([0.5])]
cases["single_value"] = [f32([2.5])]
# Randomised mixtures, each with batches of several kinds and ranges.
for i in range(8):
    batches = []
    for _ in range(rng.integers(1, 5)):
        n = int(rng.integers(10, 4000))
        scale = float(rng.choice([0.01, 1.0, 10.0]) * rng.uniform(0.2, 3.0))
        kind = rng.integers(0, 4)
        if kind == 0:
            x = rng.normal(rng.normal(), scale, n)
        elif kind == 1:
            x = rng.laplace(0.0, scale, n)
        elif kind == 2:
            x = np.maximum(rng.normal(0.0, scale, n), 0.0)
        else:
            x = np.full(n, rng.choice([0.0, 1.5, -2.0]))
        batches.append(f32(x))
    cases[f"random_{i}"] = batches


def floats(a):
    return [float(v) for v in a]


out = []
for name, batches in cases.items():
    assert sum(len(b) for b in batches) <= 20000, name
    expected = {}
    hist_obs = None
    for kind, cls in (("min_max", MinMaxObserver), ("histogram", HistogramObserver)):
        for reduce_range in (True, False):
            obs = cls(dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=reduce_range)
            for b in batches:
                obs(torch.from_numpy(b))
            scale, zero_point = obs.calculate_qparams()
            expected[f"{kind}/{'reduced' if reduce_range else 'full'}"] = {
                "scale": float(scale.item()),
                "zero_point": int(zero_point.item()),
            }
            if kind == "histogram":
                hist_obs = obs
    lo, hi = hist_obs._non_linear_param_search()
    out.append({
        "name": name,
        "batches": [floats(b) for b in batches],
        "expected": expected,
        "histogram": floats(hist_obs.histogram.numpy()),
        "histogram_range": [float(hist_obs.min_val.item()), float(hist_obs.max_val.item())],
        "searched_range": [float(lo.item()), float(hi.item())],
    })

with open(f"{sys.argv[1]}/cases.json", "w") as fh:
    json.dump({"torch": torch.__version__, "cases": out}, fh)
