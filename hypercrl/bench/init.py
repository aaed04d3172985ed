"""``hypercrl bench init``: how each hypernetwork starts, and what its start does to learning.

HyperCRL at the original's pusher sizes (target 2x200, hypernetwork 50-50 ELU, lr 1e-4,
batch 100) on the synthetic 3-task sequence (10-D state, 2-D action), one row per
``method:init`` (the full hypernetwork with xavier or hyperfan-in; each variant with its own
initialisation, which only takes ``xavier``). Per row and seed:

- ``init_std_ratio``: per generated weight matrix of the first task's model before any step,
  its standard deviation over xavier's (sqrt(2 / (fan_in + fan_out))): 1 is a xavier-scaled
  target network;
- held-out one-step MSE of task 0 during its training (learning speed), of every task right
  after it was trained, and of every task after the last one (forgetting). Lower is better.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from hypercrl import ContinualDynamics
from hypercrl.bench.argtypes import int_list
from hypercrl.synthetic import split, synthetic_tasks

DEFAULT_ROWS = ("hnet:xavier,hnet:hyperfan_in,chunked_hnet,lowrank_hnet,mip_hnet,"
                "recurrent_hnet,interval_hnet")


def parse_rows(text: str) -> list[tuple[str, str]]:
    """``method[:init],...`` -> [(method, init)]; ValueError naming a bad entry."""
    from hypercrl.cl import METHODS

    rows = []
    for entry in (e.strip() for e in text.split(",") if e.strip()):
        method, _, init = entry.partition(":")
        if not method.endswith("hnet") or method not in METHODS:
            raise ValueError(f"--rows {entry!r}: not a hypernetwork method "
                             f"({sorted(m for m in METHODS if m.endswith('hnet'))})")
        if init not in ("", "xavier", "hyperfan_in"):
            raise ValueError(f"--rows {entry!r}: init must be xavier or hyperfan_in")
        rows.append((method, init or "xavier"))
    if not rows:
        raise ValueError("--rows: give at least one method")
    return rows


def init_std_ratio(cd: ContinualDynamics) -> list[float]:
    """Each generated weight matrix's std over xavier's, for the current task, untrained."""
    import torch

    with torch.no_grad():
        weights = cd.strategy.weights([cd.current_task])
    out = []
    for w in weights.values():
        if w.dim() == 3:  # [1, out, in]
            xavier = math.sqrt(2.0 / (w.shape[1] + w.shape[2]))
            out.append(float(w[0].std()) / xavier)
    return out


def measure(method: str, init: str, seed: int, steps: int, checkpoints: int) -> dict:
    tasks = synthetic_tasks(3, state_dim=10, action_dim=2, samples=3000, seed=seed)
    cd = ContinualDynamics(10, 2, method, seed=seed, init=init)
    start = time.perf_counter()
    curve, just_trained, ratio = [], [], []
    for i, task in enumerate(tasks):
        train, test = split(task)
        cd.begin_task()
        if i == 0:
            ratio = init_std_ratio(cd)
        for _ in range(checkpoints):
            cd.fit(*train, steps=steps // checkpoints)
            if i == 0:
                curve.append(cd.mse(*test, task=0))
        cd.end_task()
        just_trained.append(cd.mse(*test, task=i))
    final = [cd.mse(*split(t)[1], task=j) for j, t in enumerate(tasks)]
    return {"method": method, "init": init, "seed": seed, "init_std_ratio": ratio,
            "task0_curve": curve, "just_trained": just_trained, "final": final,
            "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hypercrl bench init", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=DEFAULT_ROWS,
                        help="comma list of method[:init] (init: xavier or hyperfan_in)")
    parser.add_argument("--steps", type=int, default=2000, help="gradient steps per task")
    parser.add_argument("--seeds", type=int_list, default="0,1", help="comma list of seeds")
    parser.add_argument("--quick", action="store_true", help="200 steps, one seed")
    args = parser.parse_args(argv)
    try:
        rows = parse_rows(args.rows)
    except ValueError as err:
        parser.error(str(err))
    seeds = args.seeds
    if args.steps < 4:
        parser.error(f"--steps must be at least 4, got {args.steps}")
    if args.quick:
        args.steps, seeds = 200, seeds[:1]
    runs = [measure(m, init, s, args.steps, 4) for m, init in rows for s in seeds]
    summary = {}
    for m, init in rows:
        mine = [r for r in runs if (r["method"], r["init"]) == (m, init)]
        summary[f"{m}:{init}"] = {
            "init_std_ratio": float(np.mean([np.mean(r["init_std_ratio"]) for r in mine])),
            "task0_mse_curve": [float(x) for x in np.mean([r["task0_curve"] for r in mine], 0)],
            "final_mean_mse": float(np.mean([np.mean(r["final"]) for r in mine])),
        }
    print(json.dumps({"benchmark": "init", "steps_per_task": args.steps, "runs": runs,
                      "summary": summary}, indent=2))
    return 0
