"""Replay baselines: ``multitask`` (all old data) and ``coreset`` (M points per task)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from hypercrl.cl.module import ModuleOptions, ModuleStrategy


@dataclasses.dataclass
class ReplayOptions(ModuleOptions):
    """Replay is multi-head by default, as the original's baselines: one shared trunk cannot
    fit two tasks' different dynamics for the same input without knowing the task."""

    multihead: bool = True


class ReplayStrategy(ModuleStrategy):
    """Adds, at every step, the loss of each earlier task's kept data through its weights."""

    Options = ReplayOptions

    def __init__(self, net, options, generator):
        super().__init__(net, options, generator)
        self.memory: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def trainable(self, task: int) -> list[torch.nn.Parameter]:
        params = super().trainable(task)
        if self.opts.multihead:  # old heads keep training on their replayed data
            params += [p for t, h in self.heads.items() if t != task for p in h.values()]
        return params

    def replay_batch(self, x: torch.Tensor, y: torch.Tensor, batch_size: int):
        return x, y

    def extra_loss(self, task: int, batch_size: int) -> torch.Tensor | None:
        if not self.memory:
            return None
        total = 0.0
        for j, (x, y) in self.memory.items():
            xb, yb = self.replay_batch(x, y, batch_size)
            total = total + self.task_loss(self.task_weights(j), xb, yb)
        return total

    def extra_state(self) -> dict[str, Any]:
        return {"memory": self.memory}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.memory = {int(t): xy for t, xy in state["memory"].items()}


class MultitaskStrategy(ReplayStrategy):
    """Keeps every task's data; each step adds a batch from every earlier task (weight 1).

    The upper bound that keeps everything (reference §6.2).
    """

    name = "multitask"

    def end_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        self.memory[task] = (x.detach().clone(), y.detach().clone())

    def replay_batch(self, x, y, batch_size):
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=self.generator)
        idx = idx.to(x.device)
        return x[idx], y[idx]


@dataclasses.dataclass
class CoresetOptions(ReplayOptions):
    """``coreset_size``: M kept transitions per task (the original: pusher 100, door 600)."""

    coreset_size: int = 100


class CoresetStrategy(ReplayStrategy):
    """Keeps M random transitions per task and replays all of them every step."""

    name = "coreset"
    Options = CoresetOptions
    opts: CoresetOptions

    def end_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        m = min(self.opts.coreset_size, x.shape[0])
        idx = torch.randperm(x.shape[0], generator=self.generator)[:m].to(x.device)
        self.memory[task] = (x[idx].detach().clone(), y[idx].detach().clone())
