"""Paired final returns, push quick, hnet, one thread: c96507c (before the rank-one head step;
seeds 0-4 from 06155d6, whose hnet runs c96507c reproduces to the last digit: push/prev-s0)
against b943e1f. Run from the repository root: python docs/results/rank-one-head/compare.py"""
import json
import sys

import numpy as np

sys.path.insert(0, ".")
from hypercrl.metrics import bootstrap_ci  # noqa: E402

HERE = "docs/results/rank-one-head/push"


def final(path):
    m = json.load(open(path))
    last = m["returns"][str(len(m["returns"]) - 1)]
    return float(np.mean([np.mean(r) for r in last]))


old, new = [], []
for s in range(20):
    o = (f"docs/results/heldout-statistics/old-hnet-s{s}-metrics.json" if s < 5
         else f"{HERE}/prev-s{s}-metrics.json")
    old.append(final(o))
    new.append(final(f"{HERE}/new-s{s}-metrics.json"))
    print(s, round(old[-1], 1), round(new[-1], 1), round(new[-1] - old[-1], 1))
d = np.array(new) - np.array(old)
r = lambda v: [round(x, 1) for x in v]  # noqa: E731
print("before", r(bootstrap_ci(old)), "after", r(bootstrap_ci(new)), "paired", r(bootstrap_ci(d)))
print("seeds 0-4", r(bootstrap_ci(d[:5])), "seeds 5-19", r(bootstrap_ci(d[5:])),
      "lower in", int((d < 0).sum()), "of", len(d))
