"""Is it the model or the data? Refit one task's dynamics model from the transitions a run
kept, with any model-based method and options, and evaluate it as the run evaluates.

The transitions come from the run's last checkpoint: a ``multitask`` run keeps every task's
training data (``coreset`` a random sample of it, for which the growing prefixes below mean
little), and every run keeps the task it was learning when it stopped. The refit follows the
run's retrain schedule on that data: a fit of ``train_iters`` steps after the
``init_random_steps`` random steps and then every ``retrain_every`` of the ``mpc_steps`` MPC
steps, each on the rows the task had collected by then (the same share of the kept rows as of
the task's env steps; the data the run's own planner collected, so not a re-run of the loop).
The model is then scored on the task's held-out transitions and evaluated with the run's
planner, as the only task of a one-task run with the run's seed (for task 0 the run's own
evaluation episodes, for a later task others of that task), beside the run's own numbers for
the task just after learning it (null where the run has not finished it).

    python launch/refit.py RUN_DIR --task T [--method M] [--set KEY=VALUE ...]
        [--seed S] [--episodes 10]

``--method`` (default: the run's) takes its options from the run's profile for the run's
sequence, as ``hypercrl run`` would; ``--set`` changes them. Prints JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import numpy as np


def kept_transitions(checkpoint: dict, task: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training transitions (s, a, s') of ``task`` kept in a run checkpoint, oldest
    first; SystemExit naming the tasks that have some if ``task`` has none."""
    from hypercrl.data import TransitionBuffer
    from hypercrl.model import Normalizer, StateSpec

    learner, current = checkpoint["learner"], checkpoint["progress"]["task"]
    buffer = learner.get("buffer")  # the transitions of the task being learned, if any
    if buffer is not None and current == task:
        return TransitionBuffer.from_state_dict(buffer).arrays()
    dyn = learner["dynamics"]
    memory = dyn["strategy"].get("extra", {}).get("memory", {})
    if task not in memory:
        kept = sorted(memory) + ([current] if buffer is not None else [])
        raise SystemExit(f"the checkpoint keeps no training transitions of task {task}; it "
                         f"keeps those of tasks {kept or 'none'} (a multitask run keeps every "
                         "task's)")
    xn, yn = memory[task]  # standardised as the task's normaliser left them
    # an absolute dim is an input only of models that say so (or predate the option); where it
    # is not, it comes back 0, which the refit never reads (its target is the next state's)
    spec = StateSpec(dyn["config"]["state_spec"],
                     absolute_inputs=dyn["config"].get("absolute_inputs", True))
    norm = Normalizer(xn.shape[1], yn.shape[1], dyn["config"].get("normalize_targets", True))
    norm.load_state_dict(dyn["normalizers"][task])
    x = xn * norm.x_std + norm.x_mean
    s = spec.states_from_features(x[:, :spec.feature_dim])
    s2 = spec.apply(s, norm.denorm_y(yn))
    return s.numpy(), x[:, spec.feature_dim:].numpy(), s2.numpy()


def schedule(cfg, rows: int) -> list[int]:
    """The number of rows each fit of the run's retrain schedule trains on."""
    env_steps = cfg.init_random_steps + cfg.mpc_steps
    rounds = max(1, -(-cfg.mpc_steps // cfg.retrain_every))
    return [max(2, round(rows * (cfg.init_random_steps + k * cfg.retrain_every) / env_steps))
            for k in range(rounds)]


def main(argv: list[str] | None = None) -> int:
    from hypercrl.cli import _sequence
    from hypercrl.config import from_sequence, parse_set, profile_planner, select_tasks
    from hypercrl.data import TransitionBuffer
    from hypercrl.learners import ModelBasedLearner
    from hypercrl.loop import ContinualRun, RunError, load_checkpoint
    from hypercrl.report import load_run
    from hypercrl.rundir import read_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--task", type=int, required=True, help="the task to refit")
    p.add_argument("--method", default=None, help="a model-based method (default: the run's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the method (lr, beta, ...); repeatable")
    p.add_argument("--seed", type=int, default=None, help="the refit model's seed (default: "
                   "the run's; the evaluation episodes stay the run's)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes (0: none)")
    args = p.parse_args(argv)
    try:
        cfg = read_config(args.run_dir)
        checkpoint = load_checkpoint(args.run_dir)
    except RunError as e:
        p.error(str(e))
    full = _sequence(cfg.sequence, cfg.backend)
    seq = select_tasks(cfg, full)
    if not 0 <= args.task < len(seq.tasks):
        p.error(f"--task {args.task}: the run has tasks 0..{len(seq.tasks) - 1}")
    method = args.method or cfg.method
    if method not in ModelBasedLearner.methods():
        p.error(f"--method {method}: not a model-based method; choose one of "
                f"{ModelBasedLearner.methods()}")
    try:
        sets = parse_set(args.set, method, profile_planner(full.family, cfg.profile))
        profile = from_sequence(full, cfg.profile, method, sets=sets)
    except ValueError as e:
        p.error(str(e))
    s, a, s2 = kept_transitions(checkpoint, args.task)
    held = checkpoint["learner"]["heldout"].get(args.task)
    if held is None:
        p.error(f"the checkpoint holds no held-out transitions of task {args.task}")
    hs, ha, hs2 = TransitionBuffer.from_state_dict(held).arrays()
    del checkpoint

    # the refit model learns the task as its only one, with the method's options and the run's
    # other settings (network, planner, schedule); evaluated with the run's seed
    seed = cfg.seed if args.seed is None else args.seed
    task = cfg.tasks[args.task] if cfg.tasks else args.task  # the sequence's numbering
    refit_cfg = dataclasses.replace(cfg, method=method, method_options=profile.method_options,
                                    tasks=(task,), num_tasks=0, video=False)
    dynamics = ModelBasedLearner(dataclasses.replace(refit_cfg, seed=seed),
                                 seq)._new_dynamics()
    dynamics.begin_task()
    start = time.perf_counter()
    plan = schedule(cfg, len(s))
    for rows in plan:
        dynamics.fit(s[:rows], a[:rows], s2[:rows], steps=cfg.train_iters)
    fit_seconds = time.perf_counter() - start
    dynamics.end_task()

    # the run's own model of the task, just after it, where the run has finished the task
    mine = {}
    if os.path.isfile(os.path.join(args.run_dir, "metrics.json")):
        metrics = load_run(args.run_dir)
        t = str(args.task)
        if t in metrics["returns"]:
            mine = {"run_heldout_one_step": metrics["model_error_1"][t][args.task],
                    "run_return": round(float(np.mean(metrics["returns"][t][args.task])), 2)}
    out = {
        "run_dir": args.run_dir, "task": args.task, "method": method,
        "options": refit_cfg.method_options, "seed": seed, "rows": len(s), "fits": len(plan),
        "gradient_steps": len(plan) * cfg.train_iters, "fit_seconds": round(fit_seconds, 1),
        "heldout_one_step": dynamics.mse(hs, ha, hs2, task=0),
        "run_heldout_one_step": None, "run_return": None,
    } | mine
    if args.episodes:
        alone = ContinualRun(refit_cfg, full, args.run_dir, quiet=True, tensorboard=False)
        alone.learner._set_dynamics(dynamics)
        returns, successes = alone.evaluate_task(0, args.episodes)
        out |= {"returns": [round(float(r), 2) for r in returns],
                "return": round(float(np.mean(returns)), 2),
                "successes": int(sum(successes))}
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
