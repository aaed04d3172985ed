"""Task embeddings: one learned vector per task, frozen when its task ends."""

from __future__ import annotations

import torch
from torch import nn


class TaskEmbeddings(nn.Module):
    """A growing store of task embeddings, each drawn from N(0, 1) when added.

    ``plastic_previous=True`` keeps earlier tasks' embeddings trainable after their task ended
    (the original's option for the chunked hypernetwork); by default they freeze.
    """

    def __init__(self, dim: int = 10, plastic_previous: bool = False) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"embedding dim must be >= 1, got {dim}")
        self.dim = dim
        self.plastic_previous = plastic_previous
        self.embeddings = nn.ParameterList()
        self.register_buffer("frozen", torch.zeros(0, dtype=torch.bool))

    def __len__(self) -> int:
        return len(self.embeddings)

    def add(self, generator: torch.Generator | None = None) -> int:
        """Append a new N(0, 1) embedding; returns its task id."""
        device = self.frozen.device
        value = torch.randn(self.dim, generator=generator).to(device)
        self.embeddings.append(nn.Parameter(value))
        self.frozen = torch.cat([self.frozen, torch.zeros(1, dtype=torch.bool, device=device)])
        return len(self.embeddings) - 1

    def freeze(self, task: int) -> None:
        """Mark ``task``'s embedding finished; it stops training unless plastic_previous."""
        self._check(task)
        self.frozen[task] = True
        self.embeddings[task].requires_grad_(self.plastic_previous)

    def is_frozen(self, task: int) -> bool:
        self._check(task)
        return bool(self.frozen[task])

    def forward(self, tasks: list[int] | range) -> torch.Tensor:
        """Stacked embeddings of ``tasks``: [T, E]; differentiable where trainable."""
        for t in tasks:
            self._check(t)
        return torch.stack([self.embeddings[t] for t in tasks])

    def _check(self, task: int) -> None:
        if not 0 <= task < len(self.embeddings):
            raise ValueError(f"task {task} has no embedding; known tasks: 0..{len(self) - 1}")

    def resize_(self, n: int) -> None:
        """Grow to ``n`` embeddings (zeros) so that a saved state_dict can be loaded."""
        while len(self.embeddings) < n:
            self.embeddings.append(nn.Parameter(torch.zeros(self.dim, device=self.frozen.device)))
        self.frozen = torch.zeros(n, dtype=torch.bool, device=self.frozen.device)

    def apply_frozen_flags(self) -> None:
        """Re-derive requires_grad from the ``frozen`` buffer (after loading a state)."""
        for t, frozen in enumerate(self.frozen.tolist()):
            self.embeddings[t].requires_grad_(not frozen or self.plastic_previous)
