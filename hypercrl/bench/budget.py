"""``hypercrl bench budget``: planners of smaller budgets against the reference, same model.

Loads the model a run saved after task ``--after`` and evaluates each planner on every task
it has seen (or ``--tasks``), ``--episodes`` episodes per evaluation seed, exactly as the run
evaluates (the episode's env reset and the planner's noise seeded from the seed, the task and
the episode). The first planner is the reference (default: the run's own). Each planner is
written as its ``--set`` keys joined by commas, e.g. ``planner=icem,population=100``.

Per planner: model evaluations per plan step, ms per env step (planning included), mean
return and success rate (the env's ``success``; 0 where it has none) over all episodes and
seeds, and the difference to the reference with its 90 %
interval (episodes paired by task, seed and episode index, so both planners start from the
same states; a t interval on the paired differences). A planner "matches" the reference
when that interval reaches 0 or above.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from typing import Any

import numpy as np
import torch

from hypercrl.bench.argtypes import int_list, positive_int

T90 = {  # two-sided 90 % t quantiles by degrees of freedom (normal beyond 30)
    1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860,
    9: 1.833, 10: 1.812, 12: 1.782, 15: 1.753, 20: 1.725, 25: 1.708, 30: 1.697,
}


def t90(dof: int) -> float:
    if dof <= 0:
        return math.inf
    keys = [k for k in T90 if k <= dof]
    return T90[max(keys)] if dof <= 30 else 1.645


def interval90(diffs: list[float]) -> tuple[float, float, float]:
    """(mean, low, high) of the mean of paired differences, 90 % t interval."""
    d = np.asarray(diffs, dtype=float)
    mean = float(d.mean())
    if len(d) < 2:
        return mean, -math.inf, math.inf
    half = t90(len(d) - 1) * float(d.std(ddof=1)) / math.sqrt(len(d))
    return mean, mean - half, mean + half


def _planner_cfg(run_cfg, spec: str):
    """The run's config with the planner of ``spec`` (``key=value,...``; empty: the run's)."""
    from hypercrl.cli import resolve_config

    sets = [s for s in spec.split(",") if s]
    if not sets:
        return run_cfg
    new = resolve_config(run_cfg.sequence, run_cfg.backend, run_cfg.method, run_cfg.profile,
                         sets)
    return dataclasses.replace(run_cfg, planner=new.planner, horizon=new.horizon,
                               planner_options=new.planner_options)


def measure(run_dir: str, after: int | None, tasks: list[int] | None, planners: list[str],
            seeds: list[int], episodes: int) -> dict[str, Any]:
    from hypercrl.cli import load_saved_run

    base, after = load_saved_run(run_dir, after)
    tasks = list(range(after + 1)) if tasks is None else tasks
    unseen = [j for j in tasks if not 0 <= j <= after]
    if unseen:
        raise ValueError(f"--tasks {unseen}: the model saved after task {after} knows tasks "
                         f"0..{after}")
    rows, reference = [], None
    for spec in planners:
        per_episode: list[float] = []
        successes: list[float] = []
        plan_s, plans, evals = 0.0, 0, 0
        for seed in seeds:
            cfg = dataclasses.replace(_planner_cfg(base.cfg, spec), seed=seed)
            run, _ = load_saved_run(run_dir, after, cfg=cfg)
            planner = run.learner.agent.optimizer
            evals = planner.sequences_per_plan() * planner.horizon
            for j in tasks:
                start = time.perf_counter()
                returns, succeeded = run.evaluate_task(j, episodes)
                plan_s += time.perf_counter() - start
                plans += episodes * cfg.episode_steps
                per_episode += returns
                successes += succeeded
            run.close()
        row = {"planner": spec or "(the run's)", "evaluations_per_plan": evals,
               "ms_per_env_step": 1000 * plan_s / plans, "mean_return": float(np.mean(
                   per_episode)), "success_rate": float(np.mean(successes)),
               "episodes": len(per_episode)}
        if reference is None:
            reference = per_episode
        else:
            mean, low, high = interval90([a - b for a, b in zip(per_episode, reference,
                                                                 strict=True)])
            row.update({"diff_to_reference": mean, "diff_90": [low, high],
                        "matches_reference": high >= 0})
        rows.append(row)
        print(json.dumps(row), flush=True)  # progress: one line per planner
    return {"benchmark": "budget", "run_dir": run_dir, "after": after, "tasks": tasks,
            "seeds": seeds, "episodes_per_seed": episodes, "threads": torch.get_num_threads(),
            "results": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hypercrl bench budget", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--after", type=int, default=None, help="the model saved after task i")
    parser.add_argument("--tasks", type=int_list, default=None,
                        help="comma list of tasks (default: all seen)")
    parser.add_argument("--planners", nargs="+", default=[""],
                        help="planner specs, reference first, e.g. '' "
                        "'planner=icem,population=100'")
    parser.add_argument("--seeds", type=int_list, default="0,1,2", help="comma list of seeds")
    parser.add_argument("--episodes", type=positive_int, default=10,
                        help="episodes per seed and task")
    args = parser.parse_args(argv)
    out = measure(args.run_dir, args.after, args.tasks, args.planners, args.seeds,
                  args.episodes)
    print(json.dumps(out, indent=2))
    return 0
