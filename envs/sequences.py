"""Task sequences as data: what a continual learner needs to know about a task family.

A family module (``envs.push``, ``envs.door``, ``envs.cheetah``) defines
``sequence(backend: str) -> TaskSequence``. Nothing here imports a simulator.

State kinds (``TaskSequence.state_kinds``), one string per observation dimension, tell a
dynamics model how to predict that dimension:

- ``"delta"``: x' = x + f (the default);
- ``"absolute"``: x' = f;
- ``"angle"``: fed to the model as (cos, sin), predicted as a wrapped delta;
- ``"quat"``: four consecutive dimensions holding a unit quaternion [w, x, y, z], predicted
  as a rotation composed onto the current one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STATE_KINDS = ("delta", "absolute", "angle", "quat")

# family name -> "module:function" returning a TaskSequence for a backend
FAMILIES: dict[str, str] = {
    "push": "envs.push:sequence",
    "door": "envs.door:sequence",
    "halfcheetah": "envs.cheetah:sequence",
}


@dataclass(frozen=True)
class Schedule:
    """The original's per-family schedule (reference §1.3, §7), in env steps and gradient steps.

    ``eval_every`` MPC steps, every seen task is evaluated over ``curve_episodes`` episodes (the
    original's training curves); the tables (the performance matrix) use ``eval_episodes``
    episodes per cell (the original's post-hoc tables: 10).
    """

    init_random_steps: int
    mpc_steps: int
    retrain_every: int
    train_iters: int
    batch_size: int
    eval_every: int
    curve_episodes: int
    eval_episodes: int = 10


# reward(state [..., S], action [..., A], next_state [..., S]) -> [...]; numpy or torch alike
RewardFn = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class Task:
    """One task of a family: its name, index, physical parameters and reward."""

    family: str
    index: int
    name: str
    params: Mapping[str, Any]
    backend: str
    env_id: str
    reward: RewardFn
    success: Callable[[Any], Any] | None = None

    def make(self, render_mode: str | None = None, **kwargs: Any):
        """A fresh Gymnasium env for this task (``gymnasium.make`` with this task's id)."""
        import gymnasium

        return gymnasium.make(
            self.env_id, task=self.index, backend=self.backend, render_mode=render_mode, **kwargs
        )


@dataclass(frozen=True)
class TaskSequence:
    """A family's tasks in order, with everything a learner needs to know about them.

    Learner settings (network sizes, planner settings, ...) are not task facts; they live
    with the learner (``hypercrl``'s presets).
    """

    family: str
    backend: str
    tasks: tuple[Task, ...]
    observation_dim: int
    action_dim: int
    action_low: np.ndarray
    action_high: np.ndarray
    state_kinds: tuple[str, ...]
    episode_steps: int
    schedule: Schedule
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.state_kinds) != self.observation_dim:
            raise ValueError(
                f"state_kinds has {len(self.state_kinds)} entries, observation_dim is "
                f"{self.observation_dim}"
            )
        bad = sorted(set(self.state_kinds) - set(STATE_KINDS))
        if bad:
            raise ValueError(f"unknown state kinds {bad}; valid: {list(STATE_KINDS)}")

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, index: int) -> Task:
        return self.tasks[index]

    def __iter__(self):
        return iter(self.tasks)


def sequence(family: str, backend: str = "mujoco") -> TaskSequence:
    """The task sequence of ``family`` ("push", "door", "halfcheetah") on ``backend``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; valid: {sorted(FAMILIES)}")
    module_name, func_name = FAMILIES[family].split(":")
    return getattr(importlib.import_module(module_name), func_name)(backend)
