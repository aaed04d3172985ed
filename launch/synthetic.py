"""Synthetic 3-task continual dynamics: HyperCRL (hnet) against finetuning.

Each task is the same nonlinear system with new parameters (hypercrl.synthetic). After each
task, every method predicts the held-out transitions of every task seen so far; the printed
matrices hold the one-step mean squared error E[i, j] on task j after training task i.
A method that forgets shows errors growing down a column.

    python launch/synthetic.py [--steps 1500] [--methods hnet,finetune] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hypercrl import ContinualDynamics
from hypercrl.bench.argtypes import positive_int
from hypercrl.cl import METHODS
from hypercrl.synthetic import split, synthetic_tasks

OPTIONS = {
    "hnet": {"lr": 1e-3, "hnet_hidden": (32, 32)},
    "chunked_hnet": {"lr": 1e-3},
}


def run(method: str, tasks, steps: int, seed: int) -> np.ndarray:
    cd = ContinualDynamics(4, 2, method, seed=seed, hidden=(64, 64), **OPTIONS.get(method, {}))
    errors = np.full((len(tasks), len(tasks)), np.nan)
    for i, task in enumerate(tasks):
        train, _ = split(task)
        cd.begin_task()
        stats = cd.fit(*train, steps=steps, progress=True)
        cd.end_task()
        errors[i, : i + 1] = [cd.mse(*split(tasks[j])[1], task=j) for j in range(i + 1)]
        print(f"  {method}: task {i} trained, final loss {stats['loss']:.4f}", flush=True)
    return errors


def show(method: str, errors: np.ndarray) -> None:
    n = len(errors)
    print(f"\n{method}: one-step MSE on held-out data, row = after task i, column = task j")
    print("          " + "".join(f"  task {j:<4}" for j in range(n)))
    for i in range(n):
        cells = "".join(f"  {e:10.5f}" if np.isfinite(e) else f"  {'':10}" for e in errors[i])
        print(f"after {i:<3} {cells}")
    forgetting = [errors[-1, j] / errors[j, j] for j in range(n - 1)]
    print("final / just-trained error on earlier tasks: "
          + ", ".join(f"task {j}: {f:.1f}x" for j, f in enumerate(forgetting)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive_int, default=1500,
                        help="gradient steps per task")
    parser.add_argument("--methods", default="hnet,finetune")
    parser.add_argument("--tasks", type=positive_int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; known: {sorted(METHODS)}")
    tasks = synthetic_tasks(args.tasks, state_dim=4, action_dim=2, samples=2000, seed=args.seed)
    results = {}
    for method in methods:
        start = time.perf_counter()
        results[method] = run(method, tasks, args.steps, args.seed)
        print(f"  {method}: {time.perf_counter() - start:.1f} s")
    for method, errors in results.items():
        show(method, errors)


if __name__ == "__main__":
    main()
