"""Can the dynamics of a task be learned at all? A plain check before trusting a learning result.

Collects random-action episodes of one task (the loop's warm-up policy: N(0, I) clipped to the
action box), holds out every 4th episode (the loop's split), fits a model with each method and
target setting through the run's gradient-step budget, and prints the one-step MSE on the
training and the held-out transitions next to the error of predicting "no change".

    python launch/learnability.py [--sequence push] [--backend mujoco] [--task 0]
        [--episodes 20] [--fits 4] [--steps 750] [--methods finetune,hnet]
        [--normalize both|yes|no] [--option METHOD:KEY=VALUE ...]

``--option hnet:lr=1e-3`` fits that method a second time with the option changed (the
presets' value is fitted too), e.g. to see what a learning rate does to the error; with
``--methods ''`` only the ``--option`` fits run (a preset fit already measured, an hour of
HalfCheetah's hypernetwork, is not repeated).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import envs
from hypercrl import ContinualDynamics
from hypercrl.bench.argtypes import positive_int
from hypercrl.cl import METHODS
from hypercrl.config import from_sequence, method_fields, parse_set


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


def _variants(methods: list[str], options: list[str],
              parser: argparse.ArgumentParser) -> list[tuple[str, dict]]:
    """(method, changed options) to fit: each method as preset, then each --option."""
    out: list[tuple[str, dict]] = [(m, {}) for m in methods]
    for text in options:
        method, sep, assignment = text.partition(":")
        key, eq, value = assignment.partition("=")
        if not sep or not eq or not key:
            parser.error(f"--option {text}: expected METHOD:KEY=VALUE, e.g. hnet:lr=1e-3")
        try:  # typed and checked as `hypercrl run --set` does
            changed = parse_set([assignment], method)
            if key.strip() not in method_fields(method):
                raise ValueError(f"{key.strip()} is not an option of method {method!r}; "
                                 f"valid: {sorted(method_fields(method))}")
        except ValueError as err:
            parser.error(f"--option {text}: {err}")
        out.append((method, changed))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequence", default="push")
    p.add_argument("--backend", default="mujoco")
    p.add_argument("--task", type=int, default=0)
    p.add_argument("--episodes", type=positive_int, default=20,
                   help="random episodes; every 4th from the 2nd is held out (2 or more)")
    p.add_argument("--fits", type=positive_int, default=4,
                   help="retrains, as the loop's schedule")
    p.add_argument("--steps", type=positive_int, default=750,
                   help="gradient steps per retrain")
    p.add_argument("--methods", default="finetune,hnet",
                   help="comma-separated; '' with --option: only the --option fits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--normalize", choices=("both", "yes", "no"), default="both",
                   help="fit with raw targets, standardised ones, or both (default)")
    p.add_argument("--option", action="append", default=[], metavar="METHOD:KEY=VALUE",
                   help="also fit METHOD with this option changed; repeatable")
    args = p.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        p.error(f"--methods: unknown method{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}; known: {', '.join(sorted(METHODS))}")
    variants = _variants(methods, args.option, p)
    if not variants:
        p.error("nothing to fit: give --methods, or --option with --methods ''")
    if args.episodes < 2:
        p.error(f"--episodes {args.episodes}: the held-out episodes (every 4th from the 2nd) "
                "need 2 or more")
    normalizations = {"both": (False, True), "yes": (True,), "no": (False,)}[args.normalize]
    try:
        seq = envs.sequence(args.sequence, backend=args.backend)
    except ValueError as err:
        p.error(f"--sequence {args.sequence} --backend {args.backend}: {err}")
    if not 0 <= args.task < len(seq.tasks):
        p.error(f"--task {args.task}: the {args.sequence} sequence has tasks "
                f"0-{len(seq.tasks) - 1}")
    s, a, s2, ep = collect(seq, args.task, args.episodes, args.seed)
    test = ep % 4 == 1
    out = {"sequence": args.sequence, "backend": args.backend, "task": args.task,
           "transitions": int(len(s)), "heldout": int(test.sum()),
           "zero_delta_mse": float(((s2[test] - s[test]) ** 2).mean()), "fits": []}
    for method, changed in variants:
        cfg = from_sequence(seq, "paper", method)
        options = {**cfg.method_options, **changed}
        for normalize in normalizations:
            cd = ContinualDynamics(
                seq.observation_dim, seq.action_dim, method, seed=args.seed, hidden=cfg.hidden,
                probabilistic=cfg.probabilistic, normalize_targets=normalize,
                state_spec=seq.state_kinds, **options,
            )
            cd.begin_task()
            start = time.perf_counter()
            for _ in range(args.fits):
                cd.fit(s[~test], a[~test], s2[~test], steps=args.steps)
            out["fits"].append({
                "method": method, "options": changed, "normalize_targets": normalize,
                "train_mse": cd.mse(s[~test], a[~test], s2[~test], task=0),
                "heldout_mse": cd.mse(s[test], a[test], s2[test], task=0),
                "fit_seconds": round(time.perf_counter() - start, 1),
            })
            print(json.dumps(out["fits"][-1]), flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
