"""``hypercrl bench init``: xavier vs hyperfan-in hypernetwork initialisation, measured.

HyperCRL at the original's pusher sizes (target 2x200, hypernetwork 50-50 ELU, lr 1e-4,
batch 100) on the synthetic 3-task sequence (10-D state, 2-D action): held-out one-step MSE
of task 0 during its training (learning speed), on every task right after it was trained,
and on every task after the last one (forgetting). Lower is better.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hypercrl import ContinualDynamics
from hypercrl.synthetic import split, synthetic_tasks


def measure(init: str, seed: int, steps: int, checkpoints: int) -> dict:
    tasks = synthetic_tasks(3, state_dim=10, action_dim=2, samples=3000, seed=seed)
    cd = ContinualDynamics(10, 2, "hnet", seed=seed, init=init)
    start = time.perf_counter()
    curve, just_trained, final = [], [], []
    for i, task in enumerate(tasks):
        train, test = split(task)
        cd.begin_task()
        for _ in range(checkpoints):
            cd.fit(*train, steps=steps // checkpoints)
            if i == 0:
                curve.append(cd.mse(*test, task=0))
        cd.end_task()
        just_trained.append(cd.mse(*test, task=i))
    final = [cd.mse(*split(t)[1], task=j) for j, t in enumerate(tasks)]
    return {"init": init, "seed": seed, "task0_curve": curve, "just_trained": just_trained,
            "final": final, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hypercrl bench init", description=__doc__)
    parser.add_argument("--steps", type=int, default=2000, help="gradient steps per task")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--quick", action="store_true", help="200 steps, one seed")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    if args.quick:
        args.steps, seeds = 200, seeds[:1]
    rows = [measure(init, s, args.steps, 4) for s in seeds for init in ("xavier", "hyperfan_in")]
    summary = {
        init: {
            "task0_mse_end": float(np.mean([r["task0_curve"][-1] for r in rows
                                            if r["init"] == init])),
            "final_mean_mse": float(np.mean([np.mean(r["final"]) for r in rows
                                             if r["init"] == init])),
        }
        for init in ("xavier", "hyperfan_in")
    }
    print(json.dumps({"benchmark": "init", "steps_per_task": args.steps, "runs": rows,
                      "summary": summary}, indent=2))
    return 0
