"""Helpers shared by the environment tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

FAMILY_IDS = {"push": "HyperCRL/Push-v0", "door": "HyperCRL/Door-v0"}
CASES = [(family, task) for family in FAMILY_IDS for task in range(5)]
BACKENDS = ("mujoco", "pybullet")


def rollout(env: gym.Env, seed: int, steps: int) -> tuple[np.ndarray, ...]:
    """Random-action transitions: states [N, S], actions [N, A], next states, rewards [N]."""
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out: tuple[list, ...] = ([], [], [], [])
    for _ in range(steps):
        # unclipped Gaussian actions, as the original's random warm-up sends them
        action = rng.normal(0.0, 1.0, env.action_space.shape).astype(np.float32)
        nxt, reward, terminated, truncated, _ = env.step(action)
        assert not terminated and not truncated
        for store, value in zip(out, (obs, action, nxt, reward), strict=True):
            store.append(value)
        obs = nxt
    return tuple(np.asarray(x) for x in out)
