"""What the robot task envs (push, door) share: construction, rendering, closing, tasks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.backend import Backend, SceneSpec, check_backend, make_backend, resolve_task
from envs.sequences import RewardFn, Task


class RobotTaskEnv(gym.Env):
    """A task of a family on a simulator backend, its scene built from ``scene(task)``.

    Subclasses set ``family``, ``task_names`` and ``scene`` (task index -> SceneSpec).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    family: ClassVar[str]
    task_names: ClassVar[tuple[str, ...]]
    scene: ClassVar[Callable[[int], SceneSpec]]

    def __init__(
        self, task: int | str = 0, backend: str = "mujoco", render_mode: str | None = None
    ) -> None:
        self.task = resolve_task(task, self.task_names, self.family)
        self.task_name = self.task_names[self.task]
        self.backend_name = check_backend(backend)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unknown render_mode {render_mode!r}; valid: None, 'rgb_array'")
        self.render_mode = render_mode
        self.sim: Backend = make_backend(backend, type(self).scene(self.task))

    @classmethod
    def make(
        cls, task: int | str = 0, backend: str = "mujoco", render_mode: str | None = None,
        **kw: Any,
    ) -> RobotTaskEnv:
        """Gymnasium entry point; an unknown keyword is a ValueError listing the valid ones."""
        if kw:
            raise ValueError(f"unknown arguments {sorted(kw)}; valid: task, backend, render_mode")
        return cls(task=task, backend=backend, render_mode=render_mode)

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return self.sim.render()
        return None

    def close(self) -> None:
        self.sim.close()


def family_tasks(
    family: str,
    names: tuple[str, ...],
    params: Callable[[int], Mapping[str, Any]],
    backend: str,
    env_id: str,
    reward: RewardFn,
    success: Callable[[Any], Any] | None,
) -> tuple[Task, ...]:
    """The Task records of a family, in order."""
    check_backend(backend)
    return tuple(
        Task(family=family, index=i, name=name, params=params(i), backend=backend,
             env_id=env_id, reward=reward, success=success)
        for i, name in enumerate(names)
    )
