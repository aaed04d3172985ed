"""Per-task transition buffers: preallocated rings holding the most recent transitions."""

from __future__ import annotations

from typing import Any

import numpy as np


class TransitionBuffer:
    """The most recent ``capacity`` transitions (s, a, s') of one task, oldest dropped first.

    Storage is preallocated float32 numpy; ``arrays()`` returns them oldest first.
    """

    def __init__(self, state_dim: int, action_dim: int, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.state_dim, self.action_dim, self.capacity = state_dim, action_dim, capacity
        self._s = np.zeros((capacity, state_dim), np.float32)
        self._a = np.zeros((capacity, action_dim), np.float32)
        self._s2 = np.zeros((capacity, state_dim), np.float32)
        self._next = 0  # where the next transition goes
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, state: np.ndarray, action: np.ndarray, next_state: np.ndarray) -> None:
        """Append one transition ([S], [A], [S])."""
        i = self._next
        self._s[i], self._a[i], self._s2[i] = state, action, next_state
        self._next = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(states [N, S], actions [N, A], next states [N, S]), oldest first (copies)."""
        if self._size < self.capacity:
            idx = np.arange(self._size)
        else:
            idx = (np.arange(self.capacity) + self._next) % self.capacity
        return self._s[idx], self._a[idx], self._s2[idx]

    def state_dict(self) -> dict[str, Any]:
        s, a, s2 = self.arrays()
        return {"capacity": self.capacity, "s": s, "a": a, "s2": s2}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TransitionBuffer:
        s, a, s2 = state["s"], state["a"], state["s2"]
        buf = cls(s.shape[1], a.shape[1], int(state["capacity"]))
        for row in zip(s, a, s2, strict=True):
            buf.add(*row)
        return buf
