"""Per-task transition buffers (preallocated rings holding the most recent transitions) and
the order in which training draws minibatches from them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


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


class EpochBatches:
    """Index batches [batch_size] of ``range(n)`` as the original's shuffled data loader with
    ``drop_last`` draws them: epochs of a fresh permutation cut into batches, the incomplete
    last batch dropped, forever. With fewer than ``batch_size`` points each batch is drawn
    with replacement (the loader would yield none).

    The indices come from ``generator`` (a CPU one, so that a run's batches do not depend on
    the device), one permutation per epoch moved to ``device`` in one copy; each batch is a
    view of it. ``state_dict`` holds the epoch's permutation and position, so a resumed run
    draws the batches it would have drawn.
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator,
                 device: torch.device | str | None = None) -> None:
        self.n, self.batch_size, self.generator, self.device = n, batch_size, generator, device
        self.perm: torch.Tensor | None = None  # this epoch's order; None: begin one
        self.pos = 0

    def __iter__(self) -> EpochBatches:
        return self

    def __next__(self) -> torch.Tensor:
        if self.n < self.batch_size:
            return torch.randint(0, self.n, (self.batch_size,), generator=self.generator).to(
                self.device)
        if self.perm is None or self.pos + self.batch_size > self.n:
            self.perm = torch.randperm(self.n, generator=self.generator).to(self.device)
            self.pos = 0
        self.pos += self.batch_size
        return self.perm[self.pos - self.batch_size : self.pos]

    def state_dict(self) -> dict[str, Any]:
        return {"n": self.n, "batch_size": self.batch_size, "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state["n"], state["batch_size"]) != (self.n, self.batch_size):
            raise ValueError(f"batches of {state['batch_size']} from {state['n']} points "
                             f"cannot continue as {self.batch_size} from {self.n}")
        perm = state["perm"]
        self.perm = None if perm is None else perm.to(self.device)
        self.pos = int(state["pos"])
