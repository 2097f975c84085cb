"""PyTorch's own optimisers and learning-rate schedulers over a few hundred steps: the reference
for ascrepro's Adam/AdamW and schedules (tests/optim_parity.rs).

Each case trains the same small MLP (Linear 16->32, ReLU, Linear 32->10, cross-entropy on a fixed
batch) from the same initial weights, stepping the scheduler after every optimiser step:
* adam_warmup_cosine: Adam(lr 0.01); linear warm-up over 1 epoch then cosine to 0 at epoch 6
  (SequentialLR of LinearLR from ~0 and CosineAnnealingLR), 50 steps an epoch;
* adam_l2_cosine: Adam(lr 0.003, weight_decay 1e-3, betas (0.8, 0.99)); CosineAnnealingLR over
  all 300 steps;
* adamw_sgdr: AdamW(lr 0.004, weight_decay 0.05); CosineAnnealingWarmRestarts(T_0=2, T_mult=2)
  stepped with fractional epochs, 30 steps an epoch for 14 epochs (restarts at 2 and 6).

Usage: python optim_reference.py OUT.safetensors
Writes `init.<param>`, `x`, `y` (as float) and, per case, `<case>.lr` (the rate each step used) and
`<case>.<param>` (the parameters after the last step).
"""
import math
import sys

import torch
import torch.nn.functional as F

from reference import save_safetensors


def mlp():
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def run(init, x, y, make_opt, make_sched, steps, per_epoch, fractional):
    net = mlp()
    net.load_state_dict(init)
    opt = make_opt(net.parameters())
    sched = make_sched(opt)
    lrs = []
    for k in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        if fractional:
            sched.step((k + 1) / per_epoch)
        else:
            sched.step()
    return torch.tensor(lrs, dtype=torch.float64), net.state_dict()


if __name__ == "__main__":
    torch.manual_seed(7)
    torch.set_num_threads(1)
    init = mlp().state_dict()
    x = torch.randn(64, 16)
    y = torch.randint(0, 10, (64,))
    out = {f"init.{k}": v for k, v in init.items()}
    out["x"], out["y"] = x, y.float()
    cases = {
        "adam_warmup_cosine": (
            lambda p: torch.optim.Adam(p, lr=0.01),
            lambda o: torch.optim.lr_scheduler.SequentialLR(o, [
                torch.optim.lr_scheduler.LinearLR(o, start_factor=1e-12, end_factor=1.0, total_iters=50),
                torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=250),
            ], milestones=[50]),
            300, 50, False),
        "adam_l2_cosine": (
            lambda p: torch.optim.Adam(p, lr=0.003, betas=(0.8, 0.99), weight_decay=1e-3),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=300),
            300, 50, False),
        "adamw_sgdr": (
            lambda p: torch.optim.AdamW(p, lr=0.004, weight_decay=0.05),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2),
            420, 30, True),
    }
    for name, (make_opt, make_sched, steps, per_epoch, fractional) in cases.items():
        lrs, state = run(init, x, y, make_opt, make_sched, steps, per_epoch, fractional)
        out[f"{name}.lr"] = lrs
        out.update({f"{name}.{k}": v for k, v in state.items()})
    save_safetensors(sys.argv[1], out)
