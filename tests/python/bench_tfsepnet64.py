"""PyTorch peer of benches/models.rs: TF-SepNet-64 (depth 17) throughput on one thread.

python bench_tfsepnet64.py train|infer serves measurements over stdin/stdout, so the bench can
interleave its own rounds with the peer's (machine load then affects both alike):
  `warmup N`  runs N untimed iterations, answers `ok`;
  `round S`   repeats the work for at least S seconds of process CPU time (and at least once),
              answers the rate (items per CPU second) as JSON {"rate": r, "threads": t};
  end of input ends the process.
Modes:
  train: a full training step at batch 32 on 1x512x64 input: train-mode forward, cross-entropy,
         backward, torch.optim.Adam step (PyTorch's default CPU implementation); items = samples.
  infer: an eval-mode forward of one clip (batch 1) under no_grad; items = clips."""
import json
import sys
import time

import torch
import torch.nn.functional as F

from tfsepnet64 import TfSepNet64

BATCH = 32


def workload(mode):
    """(items per call, work) for `mode`."""
    torch.manual_seed(0)
    net = TfSepNet64(width=64, depth=17, dropout=0.1)
    if mode == "train":
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        x = torch.randn(BATCH, 1, 512, 64)
        y = torch.randint(0, 10, (BATCH,))

        def step():
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        return BATCH, step
    if mode == "infer":
        net.eval()
        x = torch.randn(1, 1, 512, 64)

        def infer():
            with torch.no_grad():
                net(x)

        return 1, infer
    sys.exit(f"unknown mode {mode!r} (train or infer)")


def main():
    torch.set_num_threads(1)
    items, work = workload(sys.argv[1])
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
            rate = calls * items / (time.process_time() - t0)
            print(json.dumps({"rate": rate, "threads": torch.get_num_threads()}), flush=True)
        else:
            sys.exit(f"unknown command {line!r}")


if __name__ == "__main__":
    main()
