"""Writes PyTorch checkpoints for the checkpoint-import tests (tests/checkpoint.rs), with torch.save
exactly as training code does, plus PyTorch's logits for them.

  python make_checkpoints.py OUT_DIR FB_BIN RELEASED_DIR

  1. Small TF-SepNet (tfsepnet23.Net, width 8, AdaResNorm) after one real Adam step, saved as
        tf8.ckpt           Lightning-shaped: 'state_dict' with a `model.` prefix, 'optimizer_states' with
                           Adam state, 'callbacks' holding a plain object, 'loops', 'hyper_parameters', ...
        tf8.pth            {'model_state_dict', 'optimizer_state_dict', 'epoch'}
        tf8_module.pth     {'model': state dict with DataParallel's `module.` prefix}
        tf8_f16.pth        state dict in float16; tf8_bf16.pth in bfloat16; tf8_f64.ckpt in float64
        tf8_strided.pth    the bare state dict, with non-contiguous and offset views of larger storages
        tf8_mel.ckpt       tf8.ckpt plus front-end tensors `mel.0.kernel` and `mel.1.mel_scale.fb`, the
                           filterbank read from FB_BIN (f32, [n_mels, n_bins] row-major, as
                           `Frontend::mel_bank` returns it) and stored torchaudio's way ([n_bins, n_mels])
        tf8_melx.ckpt      the same with a different filterbank
        tf8_melk.ckpt      tf8_mel.ckpt with a `mel.0.kernel` that is no torchaudio kernel (its first row
                           peaks past the middle)
      and reference.safetensors: input `x` [2, 1, 128, 44] and `logits.<file>` for every file, computed
      by PyTorch in eval mode with the weights as stored (rounded to the file's precision).
      Also bad files: legacy.pth (non-zip torch.save), compressed.pth (deflated data.pkl),
      nopickle.zip (a zip without data.pkl), script.pt (TorchScript archive).

  2. For every released checkpoint's key list RELEASED_DIR/NAME.keys.tsv, NAME.released: a checkpoint
      with exactly its state-dict names, shapes and dtypes and its top-level structure. Tensor number i
      (0-based, in the file's order) is filled with the value i, so an importer can check where each
      tensor landed.
"""
import collections
import io
import pathlib
import sys
import zipfile

import numpy as np
import torch
import torchaudio

from reference import perturb, save_safetensors
from tfsepnet23 import Net


class EarlyStoppingState:
    """Stands in for a Lightning callback: an arbitrary class the importer must carry as inert data."""

    def __init__(s):
        s.monitor = "val_loss"
        s.wait_count = 2
        s.best_score = torch.tensor(0.75)


def lightning(state_dict, optimizer, epoch):
    return {
        "epoch": epoch,
        "global_step": 1234,
        "pytorch-lightning_version": "2.5.0",
        "state_dict": state_dict,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": epoch, "completed": epoch}}}},
        "callbacks": {"EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}": EarlyStoppingState(),
                      "ModelCheckpoint": {"best_model_score": torch.tensor(0.61), "dirpath": "/tmp/ckpts"}},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [{"T_0": 10, "T_mult": 2, "last_epoch": epoch, "_step_count": 3, "base_lrs": [1e-3]}],
        "hparams_name": "kwargs",
        "hyper_parameters": {"width": 8, "norm": "ada", "lr": 1e-3, "betas": (0.9, 0.999), "devices": {"a", "b"},
                             "tag": b"bytes"},
    }


def strided(state):
    """Same values, stored as views: transposed twice (non-contiguous strides) or a slice at an offset
    of a larger storage. torch.save writes the whole storage and the view's offset/size/stride."""
    out, views = collections.OrderedDict(), 0
    for k, v in state.items():
        if v.dim() >= 2 and v.shape[0] > 1 and v.shape[1] > 1:
            w = v.transpose(0, 1).contiguous().transpose(0, 1)
            assert not w.is_contiguous()
            views += 1
        elif v.dim() == 1 and v.dtype == torch.float32:
            w = torch.cat([torch.full((3,), 99.0), v, torch.full((2,), -99.0)])[3:3 + v.numel()]
            assert w.storage_offset() == 3
        else:
            w = v
        assert torch.equal(w, v)
        out[k] = w
    assert views > 0
    return out


def tfsepnet(out, fb_path):
    torch.manual_seed(0)
    net = Net(8, "ada")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    x = torch.randn(4, 1, 128, 44)
    torch.nn.functional.cross_entropy(net(x), torch.arange(4)).backward()
    opt.step()
    perturb(net)
    net.eval()
    state = net.state_dict()
    x = torch.randn(2, 1, 128, 44)
    refs = {"x": x}

    def logits_for(sd):
        ref = Net(8, "ada")
        ref.load_state_dict({k: v.float() for k, v in sd.items()})
        ref.eval()
        with torch.no_grad():
            return ref(x)

    def prefixed(prefix, sd):
        return collections.OrderedDict((prefix + k, v) for k, v in sd.items())

    def cast(dtype):
        return collections.OrderedDict((k, v.to(dtype) if v.is_floating_point() else v) for k, v in state.items())

    files = {
        "tf8.ckpt": (lightning(prefixed("model.", state), opt, 7), state),
        "tf8.pth": ({"model_state_dict": state, "optimizer_state_dict": opt.state_dict(), "epoch": 7}, state),
        "tf8_module.pth": ({"model": prefixed("module.", state), "epoch": 3}, state),
        "tf8_f16.pth": ({"model_state_dict": cast(torch.float16)}, cast(torch.float16)),
        "tf8_bf16.pth": ({"model_state_dict": cast(torch.bfloat16)}, cast(torch.bfloat16)),
        "tf8_f64.ckpt": (lightning(prefixed("model.", cast(torch.float64)), opt, 7), state),
        "tf8_strided.pth": (strided(state), state),
    }
    bank = torch.from_numpy(np.fromfile(fb_path, dtype="<f4").reshape(128, -1).T.copy())
    kernel = torchaudio.transforms.Resample(44100, 32000).kernel
    odd = torch.zeros(320, 1, 459)
    odd[:, :, 300] = 1.0
    for name, fb, k in [("tf8_mel.ckpt", bank, kernel), ("tf8_melx.ckpt", bank * 1.5 + 0.001, kernel),
                        ("tf8_melk.ckpt", bank, odd)]:
        sd = prefixed("model.", state)
        sd["mel.0.kernel"] = k
        sd["mel.1.mel_scale.fb"] = fb
        files[name] = (lightning(sd, opt, 7), state)
    for name, (obj, weights) in files.items():
        torch.save(obj, f"{out}/{name}")
        refs["logits." + name] = logits_for(weights)
    save_safetensors(f"{out}/reference.safetensors", refs)

    # Files the importer must refuse with a clear message.
    torch.save(state, f"{out}/legacy.pth", _use_new_zipfile_serialization=False)
    buf = io.BytesIO()
    torch.save(state, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, \
            zipfile.ZipFile(f"{out}/compressed.pth", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with zipfile.ZipFile(f"{out}/nopickle.zip", "w") as z:
        z.writestr("archive/readme.txt", "no pickle here")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), f"{out}/script.pt")


DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "int64": torch.int64}


def released(tsv, out):
    top, state = [], collections.OrderedDict()
    with open(tsv) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# top-level keys:"):
                top = eval(line.split(":", 1)[1])  # a Python list literal
                continue
            if not line or line.startswith("#"):
                continue
            name, shape, dtype = line.split("\t")
            shape = [int(d) for d in shape.strip("[]").split(",") if d.strip()]
            state[name] = torch.full(shape, float(len(state))).to(DTYPES[dtype])
    optimizer = {"state": {0: {"step": torch.tensor(10.0), "exp_avg": torch.zeros(3)}},
                 "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]}
    filler = {
        "epoch": 42, "global_step": 1000, "pytorch-lightning_version": "2.1.0", "loops": {"fit_loop": {}},
        "callbacks": {"ModelCheckpoint": EarlyStoppingState()}, "optimizer_states": [optimizer],
        "lr_schedulers": [{"last_epoch": 42}], "hparams_name": "kwargs", "hyper_parameters": {"lr": 1e-3},
        "optimizer_state_dict": optimizer, "best_test_acc": 0.5, "best_val_loss": 1.25,
    }
    obj = {}
    for key in top:
        obj[key] = state if key in ("state_dict", "model_state_dict") else filler.get(key, EarlyStoppingState())
    assert any(v is state for v in obj.values()), f"{tsv}: no state dict key among {top}"
    torch.save(obj, out)


if __name__ == "__main__":
    out, fb, released_dir = sys.argv[1:4]
    tfsepnet(out, fb)
    for tsv in sorted(pathlib.Path(released_dir).glob("*.keys.tsv")):
        released(tsv, f"{out}/{tsv.name[:-len('.keys.tsv')]}.released")
