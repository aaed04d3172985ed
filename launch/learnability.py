"""Can the dynamics of a task be learned at all? A plain check before trusting a learning result.

Collects random-action episodes of one task (the loop's warm-up policy: N(0, I) clipped to the
action box), holds out every 4th episode (the loop's split), fits a model with each method and
target setting through the run's gradient-step budget, and prints the one-step MSE on the
training and the held-out transitions next to the error of predicting "no change".

    python launch/learnability.py [--sequence push] [--backend mujoco] [--task 0]
        [--episodes 20] [--fits 4] [--steps 750] [--methods finetune,hnet]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import envs
from hypercrl import ContinualDynamics
from hypercrl.config import from_sequence


def collect(seq, task: int, episodes: int, seed: int):
    env = seq.tasks[task].make()
    rng = np.random.default_rng(seed)
    rows = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        for _ in range(seq.episode_steps):
            action = np.clip(rng.standard_normal(seq.action_dim), seq.action_low,
                             seq.action_high).astype(np.float32)
            nxt, _, terminated, truncated, _ = env.step(action)
            rows.append((obs, action, nxt, ep))
            obs = nxt
            if terminated or truncated:
                break
    env.close()
    s, a, s2, ep = (np.asarray(c) for c in zip(*rows, strict=True))
    return s, a, s2, ep


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequence", default="push")
    p.add_argument("--backend", default="mujoco")
    p.add_argument("--task", type=int, default=0)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--fits", type=int, default=4, help="retrains, as the loop's schedule")
    p.add_argument("--steps", type=int, default=750, help="gradient steps per retrain")
    p.add_argument("--methods", default="finetune,hnet")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    seq = envs.sequence(args.sequence, backend=args.backend)
    s, a, s2, ep = collect(seq, args.task, args.episodes, args.seed)
    test = ep % 4 == 1
    out = {"sequence": args.sequence, "backend": args.backend, "task": args.task,
           "transitions": int(len(s)), "heldout": int(test.sum()),
           "zero_delta_mse": float(((s2[test] - s[test]) ** 2).mean()), "fits": []}
    for method in args.methods.split(","):
        cfg = from_sequence(seq, "paper", method)
        for normalize in (False, True):
            cd = ContinualDynamics(
                seq.observation_dim, seq.action_dim, method, seed=args.seed, hidden=cfg.hidden,
                probabilistic=cfg.probabilistic, normalize_targets=normalize,
                state_spec=seq.state_kinds, **cfg.method_options,
            )
            cd.begin_task()
            for _ in range(args.fits):
                cd.fit(s[~test], a[~test], s2[~test], steps=args.steps)
            out["fits"].append({
                "method": method, "normalize_targets": normalize,
                "train_mse": cd.mse(s[~test], a[~test], s2[~test], task=0),
                "heldout_mse": cd.mse(s[test], a[test], s2[test], task=0),
            })
            print(json.dumps(out["fits"][-1]), flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
