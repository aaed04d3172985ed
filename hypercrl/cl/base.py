"""The strategy protocol: hooks that ContinualDynamics calls, one object per method.

Every strategy trains the same target architecture (a :class:`TargetNet`) on standardised
inputs x [B, in] and targets y [B, S] (raw state deltas unless ContinualDynamics'
``normalize_targets``) that ContinualDynamics prepares; old tasks' data, if a strategy keeps
any, arrive standardised with that task's frozen statistics.

Every strategy minimises the original's objective (reference §3.1, §6): the task loss SUMMED
over the batch (per sample, the mean over state dimensions), plus the method's term on that
scale. Logs report ``loss`` per sample (the sum divided by B) so that they stay readable.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from hypercrl.model.target import TargetNet, gaussian_nll


def make_adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with torch's fused kernel where the device has one, else the foreach one."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


@dataclasses.dataclass
class StrategyOptions:
    """Options every strategy takes; subclasses add their own fields."""

    lr: float = 1e-3
    clip: float | None = None


class Strategy(ABC):
    """Hooks of a continual-learning method.

    Lifecycle per task t: ``begin_task(t)``, many ``train_step(t, x, y)``,
    ``end_task(t, x, y)`` with the task's training data. ``weights(tasks)`` gives target
    weights for any seen task at any time.
    """

    name: ClassVar[str]
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions

    def __init__(self, net: TargetNet, options: StrategyOptions, generator: torch.Generator):
        self.net = net
        self.opts = options
        self.generator = generator
        self.num_tasks = 0  # tasks begun so far

    @abstractmethod
    def begin_task(self, task: int) -> None: ...

    @abstractmethod
    def train_step(self, task: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One gradient step on a batch of the current task; returns detached scalars to log
        (tensors, so that a GPU step never waits for a host sync)."""

    def end_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:  # noqa: B027
        """Called once when ``task`` ends, with its (standardised) training data."""

    @abstractmethod
    def weights(self, tasks: list[int]) -> dict[str, torch.Tensor]:
        """Target weights of ``tasks``: name -> [T, *shape]."""

    def task_loss(
        self, weights: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """sum_b sum_d l(b, d) / D on a batch x [B, in], y [B, S] (a scalar): squared error,
        or (mu - y)^2 exp(-logvar) + logvar for a probabilistic net (``gaussian_nll``)."""
        mean, logvar = self.net.run(weights, x)
        return gaussian_nll(mean, logvar, y, reduction="sum")

    @abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    @classmethod
    def make_options(cls, **kwargs: Any) -> StrategyOptions:
        """Options from keywords; an unknown keyword is a ValueError listing the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls.Options)]
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for method {cls.name!r}; valid: {sorted(valid)}"
            )
        return cls.Options(**kwargs)
