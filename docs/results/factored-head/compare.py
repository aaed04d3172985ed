"""Paired final returns, push quick, hnet, one thread: b943e1f (docs/results/rank-one-head/push,
which c17e320, the commit before the factored regularised step, reproduces to the last digit
on seed 0: push/prev-s0) against this change. Run from the repository root:
python docs/results/factored-head/compare.py"""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from hypercrl.metrics import bootstrap_ci  # noqa: E402

HERE = Path("docs/results/factored-head/push")
BEFORE = Path("docs/results/rank-one-head/push")


def final(path):
    m = json.load(open(path))
    last = m["returns"][str(len(m["returns"]) - 1)]
    return float(np.mean([np.mean(r) for r in last]))


seeds = sorted(int(p.stem.split("-")[1][1:]) for p in HERE.glob("new-s*-metrics.json"))
old = np.array([final(BEFORE / f"new-s{s}-metrics.json") for s in seeds])
new = np.array([final(HERE / f"new-s{s}-metrics.json") for s in seeds])
for s, o, n in zip(seeds, old, new, strict=True):
    print(s, round(o, 1), round(n, 1), round(n - o, 1))
d = new - old
r = lambda v: [round(x, 1) for x in v]  # noqa: E731
print("seeds", seeds[0], "-", seeds[-1], "before", r(bootstrap_ci(old)), "after",
      r(bootstrap_ci(new)), "paired", r(bootstrap_ci(d)), "lower in", int((d < 0).sum()), "of",
      len(d))
