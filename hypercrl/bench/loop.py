"""``hypercrl bench loop``: where a run's wall time goes, phase by phase.

Runs the first task(s) of a profile (``quick`` by default) for each family and method, in a
temporary run directory, exactly as ``hypercrl run`` does (same loop, logging and
checkpoints), and reports the wall seconds of each phase with its share of the total:

* ``env``: stepping and resetting the simulator while collecting;
* ``plan``: choosing the collecting actions (MPC planning, or the random warm-up actions);
* ``train``: storing transitions and the model's training rounds;
* ``eval``: the evaluation episodes (their planning and env steps included);
* ``consolidate``: the method's end-of-task work and the model-error rows;
* ``checkpoint``: checkpoints and saved models; ``log``: scalars and TensorBoard;
* ``other``: the rest (building environments and the learner).

and plan steps and gradient steps per second of their phases. ``--set`` changes the run's
keys as in ``hypercrl run`` (e.g. ``--set mpc_steps=200`` for a shorter measurement).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import torch

from hypercrl.bench.argtypes import positive_int

PHASES = ("env", "plan", "train", "eval", "consolidate", "checkpoint", "log")


def measure(family: str, backend: str, method: str, profile: str, tasks: int,
            sets: list[str], seed: int) -> dict[str, Any]:
    """One run of the first ``tasks`` tasks; its phases, shares and rates."""
    from hypercrl.cli import _sequence, resolve_config
    from hypercrl.loop import ContinualRun

    cfg = resolve_config(family, backend, method, profile, [f"num_tasks={tasks}", *sets],
                         seed=seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hypercrl-bench-loop-") as run_dir:
        run = ContinualRun(cfg, _sequence(family, backend), run_dir, quiet=True)
        run.run()
    total = time.perf_counter() - start
    seconds = {k: run.timer.seconds.get(k, 0.0) for k in PHASES}
    seconds["other"] = max(0.0, total - sum(seconds.values()))
    counts = getattr(run.learner, "counts", {})
    plan_steps, grad_steps = counts.get("plan_steps", 0), counts.get("gradient_steps", 0)
    return {
        "family": family, "backend": backend, "method": method, "profile": profile,
        "tasks": tasks, "sets": sets, "total_s": total,
        "seconds": seconds,
        "share": {k: v / total for k, v in seconds.items()},
        "plan_steps": plan_steps,
        "plan_steps_per_s": plan_steps / seconds["plan"] if seconds["plan"] else None,
        "gradient_steps": grad_steps,
        "gradient_steps_per_s": grad_steps / seconds["train"] if seconds["train"] else None,
        "per_task_s": run.task_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hypercrl bench loop", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="push,door", help="comma list of task families")
    parser.add_argument("--methods", default="hnet,finetune", help="comma list of methods")
    parser.add_argument("--backend", default="mujoco", help="mujoco or pybullet")
    parser.add_argument("--profile", default="quick", help="paper, quick or smoke")
    parser.add_argument("--tasks", type=positive_int, default=1,
                        help="tasks to run (2 includes hnet's regulariser on an earlier task)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a run key or method/planner option, as in `hypercrl run`")
    args = parser.parse_args(argv)
    rows = [measure(f, args.backend, m, args.profile, args.tasks, args.set, args.seed)
            for f in args.families.split(",") if f for m in args.methods.split(",") if m]
    print(json.dumps({"benchmark": "loop", "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "results": rows}, indent=2))
    return 0
