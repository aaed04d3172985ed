"""A tiny task sequence without a simulator, for the tests of task inference in the loop.

A point in the plane moved by its 2-D action, s' = s + 0.2 * R(angle_t) a, where task t turns
the action by its own angle (0, 120, 240 degrees): the same goal (the origin), three
dynamics a model tells apart at once.
"""

from __future__ import annotations

import gymnasium
import numpy as np

from envs.sequences import Schedule, Task, TaskSequence

ENV_ID = "hypercrl-test/TurnedPoint-v0"
ANGLES = (0.0, 120.0, 240.0)


def reward(state, action, next_state):
    return -(next_state[..., 0] ** 2 + next_state[..., 1] ** 2)


class TurnedPoint(gymnasium.Env):
    def __init__(self, task: int = 0, backend: str = "none", render_mode=None) -> None:
        angle = np.radians(ANGLES[task])
        self.turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.state = np.zeros(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self.np_random.uniform(-1.0, 1.0, 2)
        return self.state.astype(np.float32), {}

    def step(self, action):
        before = self.state
        self.state = before + 0.2 * self.turn @ np.clip(action, -1.0, 1.0)
        r = float(reward(before, action, self.state))
        return self.state.astype(np.float32), r, False, False, {}


if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point=TurnedPoint)


def sequence(num_tasks: int = 3) -> TaskSequence:
    tasks = tuple(Task("turned_point", i, f"turn{int(ANGLES[i])}", {"angle": ANGLES[i]},
                       "none", ENV_ID, reward) for i in range(num_tasks))
    return TaskSequence(
        family="turned_point", backend="none", tasks=tasks, observation_dim=2, action_dim=2,
        action_low=-np.ones(2, np.float32), action_high=np.ones(2, np.float32),
        state_kinds=("delta", "delta"), episode_steps=10,
        schedule=Schedule(init_random_steps=100, mpc_steps=100, retrain_every=50,
                          train_iters=200, batch_size=32, eval_every=0, curve_episodes=1,
                          eval_episodes=2),
    )
