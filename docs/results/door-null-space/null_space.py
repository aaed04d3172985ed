"""Could the arm's redundancy keep door moves within the joint speed limits? (issue 10)

The Panda has seven joints for the hand's six degrees of freedom: one direction of joint
motion (the Jacobian's null space) leaves the hand where it is. An IK that used it well might
keep the commanded move within every joint's speed limit where today's controller, which pulls
the null space towards the rest pose, has to slow the move or drop the turn.

For uniform-random door steps (task 0, 10 episodes x 200 steps, seed 0) this takes the
commanded move alone (no turn), the joint step that makes it to first order (least-norm,
through the Jacobian's pseudo-inverse), the velocity the joints already carry (as the
controller counts it), and reports:

- the share of steps whose move alone is too fast for some joint, and which joint;
- the same share when the step also adds the best multiple of the null-space direction (the
  one that minimises the largest ratio of a joint's speed to its limit, on a fine grid);
- the median largest speed ratio of the too-fast steps, without and with it;
- the null-space direction's elbow (joint 4) entry, relative to its largest entry.

Usage: python docs/results/door-null-space/null_space.py [mujoco|pybullet]
"""

from __future__ import annotations

import json
import sys

import numpy as np

from envs import door
from envs.door import POS_SCALE


def measure(backend: str, episodes: int = 10, steps: int = 200) -> dict:
    env = door.DoorEnv(task=0, backend=backend)
    ctl = env.sim._controller
    rng = np.random.default_rng(0)
    grid = np.linspace(-3.0, 3.0, 6001)  # multiples of the unit null-space direction
    n, elbow, share_j4, ratios = 0, [], [], []
    for ep in range(episodes):
        env.reset(seed=ep)
        for _ in range(steps):
            q, v, _ = env.sim.arm_state()
            u = rng.uniform(-1.0, 1.0, 7).astype(np.float32)
            _, _, jac = ctl.kinematics(q)
            twist = np.concatenate([POS_SCALE * u[:3].astype(float), np.zeros(3)])
            dq = np.linalg.pinv(jac) @ twist
            null = np.linalg.svd(jac)[2][-1]
            offset, bound = ctl._carry(v) * ctl._span(), ctl.max_speed * ctl._span()
            alone = np.abs(offset + dq) / bound
            best = (np.abs(offset + dq + grid[:, None] * null) / bound).max(1).min()
            elbow.append(abs(null[3]) / np.abs(null).max())
            n += 1
            if alone.max() > 1.0:
                share_j4.append(int(np.argmax(alone)) == 3)
                ratios.append((alone.max(), best))
            env.step(u)
    env.close()
    r = np.array(ratios)
    return {
        "backend": backend,
        "steps": n,
        "move_alone_too_fast": round(len(r) / n, 3),
        "of_those_the_elbow_limits": round(float(np.mean(share_j4)), 3),
        "too_fast_with_best_null_space_motion": round(float(np.sum(r[:, 1] > 1.0)) / n, 3),
        "median_largest_speed_ratio_alone": round(float(np.median(r[:, 0])), 3),
        "median_largest_speed_ratio_with_null_space": round(float(np.median(r[:, 1])), 3),
        "null_space_elbow_entry_median": round(float(np.median(elbow)), 3),
        "null_space_elbow_entry_p90": round(float(np.quantile(elbow, 0.9)), 3),
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1] if len(sys.argv) > 1 else "mujoco"), indent=1))
