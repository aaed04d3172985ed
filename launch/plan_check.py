"""Does the planner believe its model? One episode of a saved run's model-based planner,
comparing at every step what the plan promises with what the real environment gives.

At each step the planner (the run's own, with the run's settings) plans through the model
saved after task ``--after`` for task ``--task``; the script records the plan's predicted
return over the horizon H, the real return of the next H steps of the episode, the real
reward, and where the plan's predicted path ends. Predicted returns far above anything the
environment pays, and plans whose predicted states leave the range the task's data visited,
mean the planner is chasing the model's errors outside its data (then ``clip_states=true``
is the remedy to try). With ``--clip`` the same model plans with its predictions clipped to
that range: the model's own record of it, or, for a model saved before the range was
recorded, the range of the task's held-out transitions in the run's last checkpoint.

    python launch/plan_check.py RUN_DIR [--after I] [--task J] [--steps 200] [--clip]
        [--seed 0] [--every 10]

Prints JSON: per-step rows every ``--every`` steps and a summary (the episode's return,
the mean predicted and realised H-step returns, the share of plans that leave the range;
``clip`` says whether the plans were clipped, by ``--clip`` or by the run's own
``clip_states``).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from hypercrl.bench.argtypes import positive_int
from hypercrl.io import one_line


def visited_range(run_dir: str, dynamics, task: int, clip: bool) -> tuple[np.ndarray, str]:
    """(low, high) [2, S] of the states task ``task``'s data visited, and where it came from."""
    norm = dynamics.normalizers[task]
    if torch.isfinite(norm.s_low).all() and torch.isfinite(norm.s_high).all():
        return np.stack([norm.s_low.numpy(), norm.s_high.numpy()]), "the model's record"
    from hypercrl.loop import load_checkpoint

    held = load_checkpoint(run_dir)["learner"].get("heldout", {}).get(task)
    if held is None or not len(held["s"]):
        raise SystemExit(f"{run_dir}: task {task} has no recorded range and no held-out "
                         "transitions in the last checkpoint")
    states = np.concatenate([np.asarray(held["s"]), np.asarray(held["s2"])])
    if clip:  # a range for the predictor to clip to: recorded as a fit would record it
        norm.frozen.fill_(False)
        norm.fit_bounds(torch.as_tensor(states))
        norm.freeze()
    return np.stack([states.min(0), states.max(0)]), "the held-out transitions"


def main(argv: list[str] | None = None) -> int:
    from hypercrl.cli import load_saved_run
    from hypercrl.model.predictor import widened_range

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--after", type=int, default=None, help="the model saved after this task "
                   "(default: the last saved)")
    p.add_argument("--task", type=int, default=None, help="the task planned for (default: "
                   "--after)")
    p.add_argument("--steps", type=positive_int, default=None, help="episode steps (default: the "
                   "run's episode length)")
    p.add_argument("--clip", action="store_true", help="plan with clipped predictions")
    p.add_argument("--seed", type=int, default=0, help="the episode's reset seed")
    p.add_argument("--every", type=positive_int, default=10, help="print a row every N steps")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    try:  # not a run, no such saved model, ...: one line (RunError is a ValueError)
        run, after = load_saved_run(args.run_dir, args.after)
    except (ValueError, OSError) as err:
        p.error(one_line(err))
    task = after if args.task is None else args.task
    if not 0 <= task <= after:
        p.error(f"--task {task}: the model after task {after} knows tasks 0..{after}")
    learner = run.learner
    dyn = learner.dynamics
    span, source = visited_range(args.run_dir, dyn, task, args.clip)
    if args.clip:
        dyn.clip_states = True
    agent = learner.agent
    agent.reward = learner.rewards[task]
    agent.set_task(task)
    # the range the check compares plans with, widened as clipping widens it
    low, high = (b.numpy() for b in widened_range(dyn.spec, torch.as_tensor(span[0]),
                                                   torch.as_tensor(span[1])))
    env = run.seq.tasks[task].make()
    steps = args.steps or run.seq.episode_steps
    obs, _ = env.reset(seed=args.seed)
    rewards, predicted, outside, rows = [], [], [], []
    horizon = agent.horizon
    for t in range(steps):
        plan = agent.plan(obs)
        paths, pred = agent.predict_plan(plan)  # [K, H, S], [H]
        path = paths.numpy()
        predicted.append(float(pred.sum()))
        outside.append(bool(((path < low - 1e-6) | (path > high + 1e-6)).any()))
        obs, reward, terminated, truncated, info = env.step(plan[0].numpy())
        rewards.append(float(reward))
        if t % args.every == 0:
            rows.append({"step": t, "reward": round(float(reward), 3),
                         "predicted_return": round(predicted[-1], 1),
                         "plan_leaves_range": outside[-1],
                         "plan_end_max_abs_state": round(float(np.abs(path[:, -1]).max()), 3)})
        if terminated or truncated:
            break
    env.close()
    n = len(rewards) - horizon + 1
    realised = [sum(rewards[i:i + horizon]) for i in range(max(n, 0))]
    out = {
        "run_dir": args.run_dir, "after": after, "task": task, "clip": dyn.clip_states,
        "range_from": source, "horizon": horizon, "steps": len(rewards),
        "return": round(sum(rewards), 2),
        "success": bool(info.get("success", False)) if isinstance(info, dict) else None,
        "mean_predicted_h_return": round(float(np.mean(predicted[:len(realised)])), 2)
        if realised else None,
        "mean_realised_h_return": round(float(np.mean(realised)), 2) if realised else None,
        "plans_leaving_range": round(float(np.mean(outside)), 3),
        "rows": rows,
    }
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
