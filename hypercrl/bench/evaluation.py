"""``hypercrl bench eval``: evaluating every seen task together against task by task.

Loads the model a run saved after task ``--after`` (default: its last) and evaluates every
task it has seen, ``--episodes`` episodes each (default: the run's ``eval_episodes``), twice
per repeat, alternating: task after task (each task's episodes together, one planner call per
step), and all tasks together (one planner call per step for every episode of every task, as
the run evaluates). Per way: the wall seconds of each repeat and their best; the ratio of the
bests (together over task by task); and whether both gave the same returns and successes,
bit for bit (they must).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from hypercrl.bench.argtypes import positive_int


def measure(run_dir: str, after: int | None, episodes: int | None,
            repeats: int) -> dict[str, Any]:
    from hypercrl.cli import load_saved_run

    run, after = load_saved_run(run_dir, after)
    episodes = episodes or run.cfg.eval_episodes
    tasks = list(range(after + 1))
    seconds: dict[str, list[float]] = {"task_by_task": [], "together": []}
    same = True
    for _ in range(repeats):
        start = time.perf_counter()
        by_task = [run.evaluate_task(j, episodes) for j in tasks]
        seconds["task_by_task"].append(time.perf_counter() - start)
        start = time.perf_counter()
        together = run.evaluate_tasks(tasks, episodes)
        seconds["together"].append(time.perf_counter() - start)
        same = same and [(r, s) for r, s, _ in together] == by_task
    run.close()
    best = {way: min(s) for way, s in seconds.items()}
    return {"benchmark": "eval", "run_dir": run_dir, "after": after, "tasks": len(tasks),
            "episodes": episodes, "episode_steps": run.cfg.episode_steps,
            "planner": run.cfg.planner, "threads": torch.get_num_threads(),
            "seconds": seconds, "best": best,
            "together_over_task_by_task": best["together"] / best["task_by_task"],
            "same_numbers": same}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hypercrl bench eval", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--after", type=int, default=None,
                        help="the model saved after task i (default: the last)")
    parser.add_argument("--episodes", type=positive_int, default=None,
                        help="episodes per task (default: the run's eval_episodes)")
    parser.add_argument("--repeats", type=positive_int, default=2,
                        help="repeats of each way, alternating")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.run_dir, args.after, args.episodes, args.repeats),
                     indent=2))
    return 0
