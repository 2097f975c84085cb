"""The authors' released systems as files in their released formats, with random weights (the real
files cannot be fetched here), at their repository paths under a data root: what the `released`
profiles of recipes/zhou2025_adaptf_sepnet.yaml and recipes/zhang2025_sscp_mobile.yaml import.

- Zhou et al. (Azhou0/dcase2025t1): seven PyTorch Lightning checkpoints, `state_dict` with the
  `backbone.` prefix, TF-SepNet-64 (width 64, depth 17), Lightning's other top-level keys.
- Zhang et al. (EOPhoeny/dcase2025_task1_inference): four Lightning checkpoints, `model.` prefix,
  SSCP-Mobile at the S1/S2 and S3/S4 widths, the front end's tensors (`mel.*`) beside the model.
- Ramezanee et al. (Mah-De/DCASE2025-Task1-Inference): plain `torch.save` dicts with
  `model_state_dict` (no prefix), DSFlexiNet's merged (deployed) graph, GLOBAL.pth and one file per
  submission V1-V4 and device A, B, C, S1, S2, S3.

Each file whose key list shared/reference/released/ holds is checked against it (names, shapes,
dtypes and top-level keys), so the fixture is the released format, not a guess at it.

Usage: python released_systems.py DATA_ROOT REFERENCE_DIR
Prints one JSON object {repository path: SHA-256}.
"""
import hashlib
import json
import os
import sys

import torch

from cp_mobile import Net as CpNet, perturb_all
from dsflexinet import Net as DsNet, perturb as ds_perturb
from tfsepnet64 import TfSepNet64
from zhang_system import System

S3_WIDTHS = [8, 32, 68, 32, 68, 32, 68, 32, 68, 58, 125, 58, 125, 101]

ZHOU = ["a-val_acc=0.6761", "b-val_acc=0.6036", "c-val_acc=0.6191", "s1-val_acc=0.5830",
        "s2-val_acc=0.5679", "s3-val_acc=0.5991", "unknown-val_acc=0.5849"]
ZHANG = {"c64_unpruned_distilled_1": None, "c64_unpruned_distilled_2": None,
         "c96_unpruned_distilled_1": S3_WIDTHS, "c96_unpruned_distilled_2": S3_WIDTHS}
# The released file each key list describes.
KEY_LISTS = {
    "Zhou_XJTLU_task1/ckpts/device_a-val_acc=0.6761.ckpt": "zhou2025_device_a_ckpt.keys.tsv",
    "Zhang_AITHU_SJTU_task1/ckpts/c64_unpruned_distilled_1.ckpt": "zhang2025_c64_unpruned_distilled_1_ckpt.keys.tsv",
    "Ramezanee_SUT_Task1/ckpts/V1-A.pth": "ramezanee2025_V1-A_pth.keys.tsv",
}
RAMEZANEE = ["GLOBAL"] + [f"V{v}-{d}" for v in range(1, 5) for d in ["A", "B", "C", "S1", "S2", "S3"]]


def randomise(net):
    """Random BatchNorm statistics and affine parameters on top of the initialisation, so that each
    device's model gives other logits."""
    perturb_all(net)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_((torch.rand(m.running_mean.shape) - 0.5) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape) + 0.5)


def lightning(state_dict, extra=()):
    obj = {"epoch": 59, "global_step": 1000, "pytorch-lightning_version": "2.5.1", "state_dict": state_dict,
           "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": []}
    for key in extra:
        obj[key] = {} if key == "hyper_parameters" else "hparams"
    return obj


def check(path, obj, tsv):
    lines = open(tsv).read().splitlines()
    top = eval(lines[0].split(": ", 1)[1])
    assert list(obj.keys()) == top, f"{path}: top-level keys {list(obj.keys())}, released {top}"
    state = obj.get("state_dict", obj.get("model_state_dict"))
    want = [l.split("\t") for l in lines[1:] if l]
    got = [[k, str(list(v.shape)), str(v.dtype).replace("torch.", "")] for k, v in state.items()]
    assert got == want, f"{path}: first difference " + str(next((g, w) for g, w in zip(got, want) if g != w))


def main():
    root, reference = sys.argv[1], sys.argv[2]
    torch.manual_seed(2025)
    files = {}
    for name in ZHOU:
        net = TfSepNet64(64, 17, dropout=0.1)
        randomise(net)
        state = {"backbone." + k: v for k, v in net.state_dict().items()}
        files[f"Zhou_XJTLU_task1/ckpts/device_{name}.ckpt"] = lightning(state, ["hparams_name", "hyper_parameters"])
    for name, widths in ZHANG.items():
        system = System()
        if widths is not None:
            system.model = CpNet("sscp_mobile", widths)
        randomise(system.model)
        files[f"Zhang_AITHU_SJTU_task1/ckpts/{name}.ckpt"] = lightning(system.state_dict())
    for name in RAMEZANEE:
        net = DsNet(32, merged=True)
        ds_perturb(net)
        files[f"Ramezanee_SUT_Task1/ckpts/{name}.pth"] = {
            "model_state_dict": net.state_dict(), "optimizer_state_dict": {"state": {}, "param_groups": []},
            "epoch": 99, "best_test_acc": 0.58, "best_val_loss": 1.2}
    hashes = {}
    for path, obj in files.items():
        if path in KEY_LISTS:
            check(path, obj, os.path.join(reference, KEY_LISTS[path]))
        out = os.path.join(root, path)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        torch.save(obj, out)
        hashes[path] = hashlib.sha256(open(out, "rb").read()).hexdigest()
    print(json.dumps(hashes))


if __name__ == "__main__":
    main()
