"""Record fixed transitions of every task of a sequence, for ``hypercrl bench cl``.

Per task: ``--random`` episodes of the loop's warm-up actions (N(0, I) clipped to the action
box) and ``--scripted`` episodes of the task's scripted policy (push: the scripted pusher;
door: the scripted opener; none for HalfCheetah) with N(0, ``--noise``^2) added to each of its
actions, so that the data hold the contacts a random arm rarely makes. A fixed seed makes the
file the same on every run of one machine and simulator version.

    python launch/record.py --sequence push --backend mujoco --out runs/data/push-mujoco.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

import numpy as np

import envs
from envs import scripted
from hypercrl.bench.argtypes import int_list, non_negative_float, non_negative_int
from hypercrl.io import folder_problem, one_line


class Recorder:
    """The task's env (unwrapped: it truncates itself) whose ``step`` records each transition;
    with ``noise`` set, N(0, noise^2) is added to each action first."""

    def __init__(self, env, seq, rng: np.random.Generator) -> None:
        self.env, self.seq, self.rng = env, seq, rng
        self.rows: list[tuple] = []
        self.noise, self.episode, self.scripted = 0.0, 0, False
        self._obs: np.ndarray | None = None

    def __getattr__(self, name: str):  # params, task, ... of the env, for the scripts
        return getattr(self.env, name)

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action):
        act = np.asarray(action, np.float64)
        if self.noise > 0:
            act = act + self.rng.normal(0.0, self.noise, act.shape)
        act = np.clip(act, self.seq.action_low, self.seq.action_high).astype(np.float32)
        nxt, reward, terminated, truncated, info = self.env.step(act)
        self.rows.append((self._obs, act, nxt, self.episode, self.scripted))
        self._obs = nxt
        return nxt, reward, terminated, truncated, info


def _push_episode(env: Recorder, seed: int) -> None:
    obs, _ = env.reset(seed=seed)
    pusher = scripted.ScriptedPusher()
    for _ in range(env.seq.episode_steps):
        obs, _, terminated, truncated, _ = env.step(pusher(obs))
        if terminated or truncated:
            break


def _door_episode(env: Recorder, seed: int) -> None:
    scripted.open_door(env, seed, max_steps=env.seq.episode_steps)


SCRIPTS: dict[str, Callable[[Recorder, int], None]] = {"push": _push_episode, "door": _door_episode}


class TaskChoiceError(ValueError):
    """``tasks`` names a task the sequence does not have (raised before anything runs)."""


def record(
    sequence: str, backend: str, n_random: int, n_scripted: int, noise: float, seed: int,
    tasks: list[int] | None = None,
) -> dict[str, np.ndarray]:
    """Arrays per recorded task j: ``s{j}, a{j}, s2{j}`` (transitions), ``ep{j}`` (episode
    index) and ``scripted{j}`` (whether the episode was scripted); plus the sequence's facts.
    ``tasks``: which of the sequence's tasks, in this order (all by default); j counts the
    recorded ones, and each keeps the random stream of its index in the sequence."""
    seq = envs.sequence(sequence, backend=backend)
    picked = list(range(len(seq.tasks))) if tasks is None else list(tasks)
    bad = [i for i in picked if not 0 <= i < len(seq.tasks)]
    if bad or not picked:
        raise TaskChoiceError(f"tasks {picked}: the {seq.family} sequence has tasks "
                         f"0-{len(seq.tasks) - 1}")
    out: dict[str, np.ndarray] = {
        "family": np.array(seq.family),
        "backend": np.array(backend),
        "state_kinds": np.array(seq.state_kinds),
        "task_names": np.array([seq.tasks[i].name for i in picked]),
    }
    script = SCRIPTS.get(seq.family)
    for j, i in enumerate(picked):
        task = seq.tasks[i]
        env = Recorder(task.make().unwrapped, seq, np.random.default_rng([seed, i]))
        for _ in range(n_random):
            env.reset(seed=seed * 1000 + env.episode)
            for _ in range(seq.episode_steps):
                _, _, terminated, truncated, _ = env.step(env.rng.standard_normal(seq.action_dim))
                if terminated or truncated:
                    break
            env.episode += 1
        if script is not None:
            env.noise, env.scripted = noise, True
            for _ in range(n_scripted):
                script(env, seed * 1000 + env.episode)
                env.episode += 1
        env.env.close()
        s, a, s2, ep, sc = (np.asarray(c) for c in zip(*env.rows, strict=True))
        out.update(
            {
                f"s{j}": s.astype(np.float32),
                f"a{j}": a,
                f"s2{j}": s2.astype(np.float32),
                f"ep{j}": ep.astype(np.int32),
                f"scripted{j}": sc,
            }
        )
    return out


def output_path(out: str) -> str:
    """The file ``np.savez_compressed(out)`` writes (``out`` with ``.npz`` added when it has
    none), its folder made; OSError naming the path when it cannot be written there."""
    path = out if out.endswith(".npz") else f"{out}.npz"
    if os.path.isdir(path):
        raise IsADirectoryError(21, "is a folder", path)
    folder = os.path.dirname(os.path.abspath(path))
    problem = folder_problem(folder)
    if problem:
        raise OSError(f"{folder}: {problem}")
    os.makedirs(folder, exist_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequence", default="push", choices=sorted(envs.FAMILIES))
    p.add_argument("--backend", default="mujoco", choices=["mujoco", "pybullet"])
    p.add_argument("--random", type=non_negative_int, default=10,
                   help="random episodes per task")
    p.add_argument("--scripted", type=non_negative_int, default=10,
                   help="scripted episodes per task (none for a family without a script)")
    p.add_argument("--noise", type=non_negative_float, default=0.3,
                   help="std of the scripted actions' noise")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", type=int_list, default=None,
                   help="comma list of task indices (default: all)")
    p.add_argument("--out", required=True,
                   help="the .npz to write (.npz is added to a name without it)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    scripted_episodes = args.scripted if args.sequence in SCRIPTS else 0
    if args.random + scripted_episodes < 1:
        why = ("; give --random or --scripted 1 or more" if args.sequence in SCRIPTS else
               f" ({args.sequence} has no scripted policy: --scripted records nothing); "
               "give --random 1 or more")
        p.error(f"--random {args.random} --scripted {args.scripted}: no episode to record{why}")
    try:  # before minutes of recording: a folder that cannot hold the file
        out = output_path(args.out)
    except OSError as err:
        p.error(f"--out {args.out}: {one_line(err)}")
    try:
        data = record(args.sequence, args.backend, args.random, args.scripted, args.noise,
                      args.seed, args.tasks)
    except TaskChoiceError as err:  # any other error is not the user's: it shows whole
        p.error(f"--tasks {','.join(map(str, args.tasks))!r}: {err}")
    np.savez_compressed(out, **data)
    n = len(data["task_names"])
    print(
        json.dumps(
            {
                "out": out,
                "tasks": n,
                "transitions_per_task": [int(len(data[f"s{j}"])) for j in range(n)],
                "scripted_per_task": [int(data[f"scripted{j}"].sum()) for j in range(n)],
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
