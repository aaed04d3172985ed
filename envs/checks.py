"""Physical checks of the robot tasks, measured from what the simulators report, as JSON.

``python -m envs.checks [reach|steps|random|turns|digest|all] [--backend mujoco|pybullet|all]``

- ``reach``: how far from its base the Panda reaches with the hand down at push height (the
  IK run to convergence within the datasheet's joint limits), per direction in the table plane;
- ``steps``: in free space, the hand's move over the commanded move (push: four moves away
  from the block; door: six), the first step of each direction (from rest) left out;
- ``random``: uniform random actions (20 episodes x 100 steps per family): the share of steps
  whose hand move exceeds 8 cm and 1.1x the longest command, the largest move, the largest
  joint speed over its limit, the furthest a joint went past its position limit, and (push)
  the largest height error of the hand;
- ``turns``: a straight 20 cm push through the block's centre (2 cm per step), per push task:
  the block's yaw (degrees) afterwards; with it, the yaw a quasi-static Coulomb model of the
  same push gives (``envs.quasistatic``), the physics both simulators should agree with;
- ``digest``: a SHA-256 of every observation and reward of 450 seeded random steps (resets
  included) per family, on its first and last task: a change meant to leave the envs as they
  are (speed work) must give the same digests before and after, on the same machine (other
  CPUs round differently).

docs/ENVIRONMENTS.md records these numbers before and after each change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from envs import door, push  # noqa: E402
from envs.backend import ARM_POSITION_LIMITS, ARM_VELOCITY_LIMITS, BACKENDS  # noqa: E402
from envs.quasistatic import centre_push_turn  # noqa: E402

LIMITS = np.asarray(ARM_POSITION_LIMITS)
SPEEDS = np.asarray(ARM_VELOCITY_LIMITS)
FAMILIES = {"push": push.PushEnv, "door": door.DoorEnv}


def reach() -> dict[str, Any]:
    """Nearest and furthest reachable distance from the base at push height, per direction."""
    from envs.controller import ArmController
    from envs.rotations import quat_to_mat

    ctl = ArmController.for_scene(push.scene(0))
    base = np.asarray(push.ROBOT_BASE[:2])
    rot = quat_to_mat(push.EE_QUAT_DOWN)
    out = {}
    for angle in (0, 15, 30, 45, 60):
        direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
        ok = []
        for r in np.arange(0.10, 0.80, 0.01):
            target = np.array([*(base + r * direction), push.PUSH_HEIGHT])
            q = ctl.solve(target, rot, push.HOME_QPOS, push.HOME_QPOS, iters=400, tol=1e-5)
            ok.append(np.linalg.norm(ctl.kinematics(q)[0] - target) < 1e-3)
        radii = np.arange(0.10, 0.80, 0.01)[np.array(ok)]
        out[f"{angle}deg"] = [round(float(radii.min()), 2), round(float(radii.max()), 2)]
    return {"reach_m_by_direction": out, "reach_used": list(push.REACH)}


def _pos(env: Any) -> np.ndarray:
    return env.sim.ee_pose()[0]


# per family: free-space directions of the hand (away from the block or door) and the action
# that moves the hand along one (push: -x only a little, 0.26 m from the base the workspace ends)
FREE_MOVES = {
    "push": ([[-0.4, 0.0], [0.0, 1.0], [0.0, -1.0], [0.0, -1.0]], lambda d: d),
    "door": (
        [[-1, 0, 0], [0, 1, 0], [0, 0, 1], [0, -1, 0], [0, 0, -1], [-0.5, 0.5, 0.5]],
        lambda d: [*d, 0, 0, 0, -1],  # no turn, gripper open
    ),
}
MOVE_SCALE = {"push": push.ACTION_SCALE, "door": door.POS_SCALE}  # m per step at |u| = 1


def free_space_ratios(family: str, backend: str, repeats: int = 3) -> np.ndarray:
    """The hand's move along each commanded move over its length, ``[directions, repeats -
    1]``: each direction commanded ``repeats`` times, the first (from rest) left out."""
    directions, action = FREE_MOVES[family]
    env = FAMILIES[family](task=0, backend=backend)
    env.reset(seed=0)
    ratios = []
    for d in directions:
        cmd = MOVE_SCALE[family] * np.pad(np.array(d, float), (0, 3 - len(d)))
        for i in range(repeats):
            before = _pos(env)
            env.step(np.array(action(d), np.float32))
            if i:
                ratios.append(float((_pos(env) - before) @ cmd / (cmd @ cmd)))
    env.close()
    return np.array(ratios).reshape(len(directions), repeats - 1)


def steps(backend: str) -> dict[str, Any]:
    """Free-space move / commanded move, per family."""
    out = {}
    for family in FAMILIES:
        r = free_space_ratios(family, backend)
        out[family] = [round(float(r.min()), 3), round(float(r.max()), 3)]
    return {"free_space_move_over_command": out}


def random_motion(
    family: str, backend: str, episodes: int = 20, length: int = 100
) -> dict[str, Any]:
    """Arm motion under uniform random actions (seeded), unrounded: the hand's moves [m] per
    step, the largest joint speed over its limit, the furthest a joint went past its position
    limit (rad, negative if none reached one), the largest height error of the hand (push),
    and whether everything stayed finite."""
    env = FAMILIES[family](task=0, backend=backend)
    rng = np.random.default_rng(1)
    moves, speed, past, height = [], 0.0, -np.inf, 0.0
    finite = True
    for episode in range(episodes):
        env.reset(seed=episode)
        for _ in range(length):
            before = _pos(env)
            obs, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
            after = _pos(env)
            q, qd, _ = env.sim.arm_state()
            finite &= bool(np.all(np.isfinite(obs)) and np.all(np.isfinite(q)))
            moves.append(float(np.linalg.norm(after - before)))
            speed = max(speed, float(np.max(np.abs(qd) / SPEEDS)))
            past = max(past, float(np.max(np.maximum(LIMITS[:, 0] - q, q - LIMITS[:, 1]))))
            height = max(height, abs(float(after[2]) - push.PUSH_HEIGHT))
    env.close()
    return {
        "moves": np.array(moves),
        "speed": speed,
        "past": past,
        "height": height,
        "finite": finite,
    }


def longest_command(family: str) -> float:
    """m, the longest move one action commands."""
    return MOVE_SCALE[family] * math.sqrt(len(FREE_MOVES[family][0][0]))


def random_actions(backend: str, episodes: int = 20, length: int = 100) -> dict[str, Any]:
    """Arm motion under uniform random actions, per family."""
    out = {}
    for family in FAMILIES:
        motion = random_motion(family, backend, episodes, length)
        m = motion["moves"]
        row = {
            "steps": len(m),
            "share_over_8cm": round(float((m > 0.08).mean()), 4),
            "share_over_1.1x_longest_command": round(
                float((m > 1.1 * longest_command(family)).mean()), 4
            ),
            "largest_move_m": round(float(m.max()), 4),
            "largest_joint_speed_over_limit": round(motion["speed"], 3),
            "furthest_past_position_limit_rad": round(max(motion["past"], 0.0), 4),
            "all_finite": motion["finite"],
        }
        if family == "push":
            row["largest_height_error_m"] = round(motion["height"], 4)
        out[family] = row
    return {"random_actions": out}


def push_turn(backend: str, task: int, distance: float = 0.2) -> float:
    """Yaw (degrees) of the block after the hand has pushed it ``distance`` m forward (+x,
    2 cm per step) with the gripper held on y = 0, through the block's starting centre."""
    env = push.PushEnv(task=task, backend=backend)
    obs, _ = env.reset(seed=0)
    start = obs[2:].reshape(4, 2).mean(axis=0)[0]
    for _ in range(40):
        if obs[2:].reshape(4, 2).mean(axis=0)[0] - start >= distance:
            break
        ee_y = obs[2:6].reshape(2, 2).mean(axis=0)[1] - obs[1]
        obs, *_ = env.step(np.array([0.4, np.clip(-ee_y / 0.05, -1, 1)], np.float32))
    env.close()
    c = obs[2:].reshape(4, 2)  # the -y edge, back to front corner
    return math.degrees(math.atan2(c[2, 1] - c[0, 1], c[2, 0] - c[0, 0]))


def turns(backend: str) -> dict[str, Any]:
    return {"push_turn_deg": [round(push_turn(backend, t), 1) for t in range(len(push.TASKS))]}


def reference_turns() -> list[float]:
    """Yaw (degrees) of each push task's block after the centre push, by the quasi-static
    model at the scene's frictions and the finger's contact at the block's top edge."""
    return [
        round(
            centre_push_turn(
                left,
                right,
                push_height=2 * push.BLOCK_START[2],
                table_friction=push.BLOCK_FRICTION,
                finger_friction=push.PUSHER_FRICTION,
            ),
            1,
        )
        for _, left, right in push.TASKS
    ]


def trajectory_digest(family: str, backend: str, task: int, steps: int = 450) -> str:
    """SHA-256 (hex) of the observations and rewards of ``steps`` uniform random actions
    (seeded by ``task``) on ``task``, resetting at each episode's end."""
    env = FAMILIES[family](task=task, backend=backend)
    rng = np.random.default_rng(task)
    digest = hashlib.sha256()
    obs, _ = env.reset(seed=task)
    digest.update(obs.tobytes())
    for i in range(steps):
        action = rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        digest.update(obs.tobytes())
        digest.update(np.float64(reward).tobytes())
        if terminated or truncated:
            obs, _ = env.reset(seed=1000 + i)
            digest.update(obs.tobytes())
    env.close()
    return digest.hexdigest()


def digests(backend: str) -> dict[str, Any]:
    return {"digest": {
        f"{family}/{task}": trajectory_digest(family, backend, task)
        for family, cls in FAMILIES.items() for task in (0, len(cls.task_names) - 1)
    }}


CHECKS = {"steps": steps, "random": random_actions, "turns": turns, "digest": digests}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", nargs="?", default="all", choices=[*CHECKS, "reach", "all"])
    parser.add_argument("--backend", default="all", choices=[*BACKENDS, "all"])
    args = parser.parse_args(argv)
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    out: dict[str, Any] = {}
    if args.check in ("reach", "all"):
        out["reach"] = reach()
    if args.check in ("turns", "all"):
        out["quasi_static"] = {"push_turn_deg": reference_turns()}
    for name, fn in CHECKS.items():
        if args.check in (name, "all"):
            for backend in backends:
                out.setdefault(backend, {}).update(fn(backend))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
