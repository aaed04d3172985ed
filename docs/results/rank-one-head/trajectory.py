"""Pusher-size hnet, 2000 task-0 steps on a fixed learnable data set: the gradient written out
(HYPERCRL_COMPILE=0), the same from a head moved by one float32 ulp, and rank-one
(HYPERCRL_COMPILE=1). Prints the last 200 steps' mean loss and the weights' distances.
Run from the repository root: python docs/results/rank-one-head/trajectory.py"""
import os
import sys

import torch

sys.path.insert(0, ".")
import hypercrl.bench.train as bt  # noqa: E402
from hypercrl.cpu import configure  # noqa: E402

torch.set_num_threads(1)
configure()
setting = bt.size("push")
gen = torch.Generator().manual_seed(1)
# a learnable target: y = tanh(x A) + noise
A = torch.randn(setting["in_dim"], setting["out_dim"], generator=gen) * 0.5
X = torch.randn(4000, setting["in_dim"], generator=gen)
Y = torch.tanh(X @ A) + 0.05 * torch.randn(4000, setting["out_dim"], generator=gen)


def train(mode, perturb=False, steps=2000):
    os.environ["HYPERCRL_COMPILE"] = mode
    strat = bt._strategy(setting, "full", torch.device("cpu"))
    if perturb:
        with torch.no_grad():
            w = strat.hnet.head.weight
            w.copy_(torch.nextafter(w, torch.full_like(w, float("inf"))))
    strat.begin_task(0)
    g = torch.Generator().manual_seed(2)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, 4000, (100,), generator=g)
        losses.append(float(strat.train_step(0, X[idx], Y[idx])["loss"]))
    flat = torch.cat([p.detach().flatten() for p in strat.hnet.parameters()])
    return flat, sum(losses[-200:]) / 200


d0, l0 = train("0")
d0p, l0p = train("0", perturb=True)
d1, l1 = train("1")
ref = d0.norm()
print(f"loss written out {l0:.5f}, from a head one ulp away {l0p:.5f}, rank-one {l1:.5f}")
print(f"relative distance from the written-out run: one ulp {(d0 - d0p).norm() / ref:.3e}, "
      f"rank-one {(d0 - d1).norm() / ref:.3e}")
