"""Would `mujoco.rollout` take the MuJoCo backend's substep loop out of Python? (issue 12)

An env step runs 50 physics substeps, each with its own servo input. Timed here from one
state of push task 0 (after 3 random steps), 200 times each, for 50 substeps with a fixed
sequence of inputs: a Python loop writing `ctrl` then calling `mj_step`; one
`mujoco.rollout` call with the same inputs (the same states to the bit, checked); and
`mj_step(nstep=50)` with one input (the physics alone).

Usage: python docs/results/mujoco-rollout/substeps.py
"""

from __future__ import annotations

import json
import time

import mujoco
import numpy as np
from mujoco import rollout

from envs import push

FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS.value
N = 50


def main() -> None:
    env = push.PushEnv(task=0, backend="mujoco")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(3):
        env.step(rng.uniform(-1, 1, 2).astype(np.float32))
    m, d = env.sim.model, env.sim.data
    state = np.empty(mujoco.mj_stateSize(m, FULL))
    mujoco.mj_getState(m, d, state, FULL)
    warm = d.qacc_warmstart.copy()
    ctrls = np.tile(d.ctrl, (N, 1))
    ctrls[:, :7] += np.linspace(0, 0.05, N)[:, None]
    out = np.empty((1, N, len(state)))
    roller = rollout.Rollout(nthread=0)

    def restore() -> None:
        mujoco.mj_setState(m, d, state, FULL)
        d.qacc_warmstart[:] = warm

    def loop() -> None:
        restore()
        for k in range(N):
            d.ctrl[:] = ctrls[k]
            mujoco.mj_step(m, d)

    def rolled() -> None:
        restore()
        roller.rollout([m], [d], state[None], ctrls[None], nstep=N,
                       initial_warmstart=warm[None], state=out, skip_checks=True)

    def physics() -> None:
        restore()
        mujoco.mj_step(m, d, nstep=N)

    loop()
    q_loop = d.qpos.copy()
    rolled()
    same = bool(np.array_equal(q_loop, d.qpos))
    ms = {f.__name__: [] for f in (loop, rolled, physics)}
    for _ in range(2):
        for f in (loop, rolled, physics):
            start = time.perf_counter()
            for _ in range(200):
                f()
            ms[f.__name__].append(round((time.perf_counter() - start) / 200 * 1e3, 3))
    print(json.dumps({"same_states": same, "ms_per_50_substeps": ms}))


if __name__ == "__main__":
    main()
