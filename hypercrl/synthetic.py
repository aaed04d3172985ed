"""A synthetic continual dynamics sequence: one nonlinear system, new parameters per task.

s' = s + dt * (A_t tanh(s) + B_t a), with A_t [S, S] and B_t [S, A] drawn per task. Used by
the tests and by ``make demo``; no simulator involved.
"""

from __future__ import annotations

import numpy as np


def synthetic_tasks(
    num_tasks: int = 3,
    state_dim: int = 4,
    action_dim: int = 2,
    samples: int = 2000,
    seed: int = 0,
    dt: float = 0.5,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``num_tasks`` transition sets (states [N, S], actions [N, A], next states [N, S])."""
    rng = np.random.default_rng(seed)
    tasks = []
    for _ in range(num_tasks):
        a_mat = rng.normal(size=(state_dim, state_dim))
        b_mat = rng.normal(size=(state_dim, action_dim))
        s = rng.uniform(-2, 2, size=(samples, state_dim))
        a = rng.uniform(-1, 1, size=(samples, action_dim))
        s2 = s + dt * (np.tanh(s) @ a_mat.T + a @ b_mat.T)
        tasks.append((s.astype(np.float32), a.astype(np.float32), s2.astype(np.float32)))
    return tasks


def split(
    task: tuple[np.ndarray, np.ndarray, np.ndarray], train_fraction: float = 0.8
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """(train, held-out) halves of one task's transitions."""
    n = int(len(task[0]) * train_fraction)
    return tuple(x[:n] for x in task), tuple(x[n:] for x in task)
