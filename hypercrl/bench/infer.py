"""``hypercrl bench infer RUN_DIR``: how well a run's model tells its tasks apart.

Loads the run's last checkpoint (its dynamics model and the held-out transitions of every
task it has seen, never trained on) and asks ``ContinualDynamics.infer_task`` which task each
window of W consecutive held-out transitions comes from. Prints JSON: per window size, the
share of windows attributed to their own task, overall and per task, and the confusion
counts (row: the true task, column: the inferred one).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def accuracy(dynamics, heldout: dict[int, tuple[np.ndarray, ...]], window: int) -> dict:
    """Windows of ``window`` consecutive transitions per task, and which task each gets."""
    n = dynamics.num_tasks
    confusion = np.zeros((n, n), dtype=int)
    start = time.perf_counter()
    for j, (s, a, s2) in heldout.items():
        for k in range(0, len(s) - window + 1, window):
            got = dynamics.infer_task(s[k:k + window], a[k:k + window], s2[k:k + window])
            confusion[j, got.task] += 1
    windows = int(confusion.sum())
    per_task = [float(confusion[j, j] / confusion[j].sum()) if confusion[j].sum() else None
                for j in range(n)]
    return {"window": window, "windows": windows,
            "accuracy": float(np.trace(confusion) / windows) if windows else None,
            "per_task": per_task, "confusion": confusion.tolist(),
            "ms_per_inference": 1e3 * (time.perf_counter() - start) / max(1, windows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hypercrl bench infer", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--windows", default="1,5,10,25,50",
                        help="comma list of window sizes W (transitions per inference)")
    args = parser.parse_args(argv)
    from hypercrl.api import ContinualDynamics
    from hypercrl.loop import RunError, load_checkpoint

    try:
        windows = [int(w) for w in args.windows.split(",") if w.strip()]
    except ValueError:
        parser.error(f"--windows {args.windows!r}: expected integers separated by commas")
    if not windows or min(windows) < 1:
        parser.error(f"--windows {args.windows!r}: every window must be 1 or more")
    state = load_checkpoint(args.run_dir)
    learner = state["learner"]
    if "dynamics" not in learner or not learner.get("heldout"):
        raise RunError(f"{args.run_dir}: a run of method {state['config']['method']!r} has no "
                       "dynamics model with held-out transitions to infer tasks from")
    dynamics = ContinualDynamics.load_from_state(learner["dynamics"])
    heldout = {int(j): (b["s"], b["a"], b["s2"]) for j, b in learner["heldout"].items()
               if len(b["s"]) and int(j) < dynamics.num_tasks}
    print(json.dumps({
        "benchmark": "infer", "run_dir": args.run_dir, "method": state["config"]["method"],
        "sequence": state["config"]["sequence"], "tasks": dynamics.num_tasks,
        "heldout_transitions": {j: len(h[0]) for j, h in heldout.items()},
        "results": [accuracy(dynamics, heldout, w) for w in windows],
    }, indent=2))
    return 0
