"""Writes the PyTorch-made seeds of the fuzz corpus (checkpoint, zip and pickle readers):

  python fuzz/make_seeds.py fuzz/corpus

  checkpoint/*.pt   small torch.save files: a bare state dict (f32, f16, bf16, f64, int64 counters,
                    non-contiguous and offset views sharing a storage), a Lightning-shaped .ckpt
                    (prefix `model.`, optimizer state, callbacks with a plain object, hyper-parameters),
                    pickle protocol 4
  zip/*.pt          the same archives (the container reader's seeds)
  pickle/*.pkl      their data.pkl, and plain pickles of protocols 0 to 5
Each seed is a few kB; the corpus is committed, this script is how it was made.
"""
import collections
import io
import pathlib
import pickle
import sys
import zipfile

import torch


class EarlyStoppingState:
    def __init__(s):
        s.monitor = "val_loss"
        s.wait_count = 2
        s.best_score = torch.tensor(0.75)


def state_dict():
    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict()
    sd["stem.conv.weight"] = torch.randn(4, 1, 3, 3, generator=g)
    sd["stem.bn.weight"] = torch.ones(4)
    sd["stem.bn.bias"] = torch.zeros(4)
    sd["stem.bn.running_mean"] = torch.randn(4, generator=g)
    sd["stem.bn.running_var"] = torch.rand(4, generator=g) + 0.5
    sd["stem.bn.num_batches_tracked"] = torch.tensor(7)
    big = torch.randn(6, 5, generator=g)
    sd["head.weight"] = big.t()  # non-contiguous view
    sd["head.bias"] = big[2, 1:]  # offset view of the same storage
    sd["half"] = torch.randn(3, generator=g).half()
    sd["bhalf"] = torch.randn(3, generator=g).bfloat16()
    sd["double"] = torch.randn(2, 2, generator=g).double()
    sd["scalar"] = torch.tensor(1.5)
    sd["empty"] = torch.zeros(0, 3)
    return sd


def save(obj, **kw):
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


def main(out):
    out = pathlib.Path(out)
    for d in ("checkpoint", "zip", "pickle"):
        (out / d).mkdir(parents=True, exist_ok=True)
    sd = state_dict()
    files = {
        "bare.pth": save(sd),
        "lightning.ckpt": save({
            "epoch": 3,
            "global_step": 1234,
            "pytorch-lightning_version": "2.5.0",
            "state_dict": collections.OrderedDict(("model." + k, v) for k, v in sd.items()),
            "optimizer_states": [{"state": {0: {"step": torch.tensor(1.0), "exp_avg": torch.zeros(4)}},
                                  "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]}],
            "callbacks": {"EarlyStopping": EarlyStoppingState()},
            "hyper_parameters": {"lr": 0.001, "name": "tiny", "classes": ["a", "b"], "big": 2**70,
                                 "neg": -(2**70), "f": float("inf"), "none": None, "t": (1, 2.5)},
        }),
        "protocol4.pth": save({"model_state_dict": sd, "epoch": 1}, pickle_protocol=4),
    }
    for name, data in files.items():
        (out / "checkpoint" / name).write_bytes(data)
        (out / "zip" / name).write_bytes(data)
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
            (out / "pickle" / (name.split(".")[0] + ".data.pkl")).write_bytes(z.read(pkl))
    plain = {"a": [1, 2.5, None, True, False, "s", b"b", (1, 2), (), [], {}],
             "big": 2**70, "neg": -(2**70), "ints": [0, 255, 65535, -1, 2**31, 2**63],
             "nested": {"x": {"y": [{"z": 1}]}}, "uni": "é\u2603", "bytes": bytearray(b"xy"),
             "set": {1, 2}, "frozen": frozenset({3})}
    shared = [1, 2]
    plain["shared"] = (shared, shared)
    for proto in range(6):
        (out / "pickle" / f"plain.p{proto}.pkl").write_bytes(pickle.dumps(plain, protocol=proto))


if __name__ == "__main__":
    main(sys.argv[1])
