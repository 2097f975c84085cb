"""Reference values for the multi-label metrics and loss: scikit-learn's average precision and
PyTorch's BCEWithLogitsLoss on the cases the test writes.

Reads the JSON file named by the first argument:
  {"ap": [{"scores": [[...]], "targets": [[...]]}, ...],
   "bce": [{"logits": [[...]], "targets": [[...]]}, ...]}
and prints one JSON object:
  {"ap": [{"per_class": [AP or null, ...], "macro_present": mAP over the classes with a
           positive, "macro_all": sklearn's macro over every class}, ...],
   "bce": [{"float32": loss, "float64": loss}, ...]}
scikit-learn comes into the venv with librosa.
"""
import json
import sys
import warnings

import numpy as np
import torch
from sklearn.metrics import average_precision_score

cases = json.load(open(sys.argv[1]))

ap_out = []
for case in cases["ap"]:
    scores = np.asarray(case["scores"], dtype=np.float64)
    targets = np.asarray(case["targets"], dtype=np.int64)
    present = targets.sum(axis=0) > 0
    per_class = [
        float(average_precision_score(targets[:, c], scores[:, c])) if present[c] else None
        for c in range(targets.shape[1])
    ]
    with warnings.catch_warnings():
        # sklearn warns for each class without a positive (and scores it 0).
        warnings.simplefilter("ignore")
        macro_all = float(average_precision_score(targets, scores, average="macro"))
    kept = np.flatnonzero(present)
    macro_present = float(
        average_precision_score(targets[:, kept], scores[:, kept], average="macro")
    )
    ap_out.append(
        {"per_class": per_class, "macro_present": macro_present, "macro_all": macro_all}
    )

bce_out = []
loss = torch.nn.BCEWithLogitsLoss()
for case in cases["bce"]:
    row = {}
    for name, dtype in [("float32", torch.float32), ("float64", torch.float64)]:
        x = torch.tensor(case["logits"], dtype=dtype)
        y = torch.tensor(case["targets"], dtype=dtype)
        row[name] = loss(x, y).item()
    bce_out.append(row)

print(json.dumps({"ap": ap_out, "bce": bce_out}))
