"""Replay baselines: ``multitask`` (all old data) and ``coreset`` (M points per task)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from hypercrl.cl.base import check_int
from hypercrl.cl.module import ModuleOptions, ModuleStrategy
from hypercrl.data import EpochBatches


@dataclasses.dataclass
class ReplayOptions(ModuleOptions):
    """Replay keeps the multi-head default of every baseline: one shared trunk cannot fit two
    tasks' different dynamics for the same input without knowing the task."""


class ReplayStrategy(ModuleStrategy):
    """Adds, at every step, the loss of each earlier task's kept data through its weights.

    Each earlier task j adds ``replay_loss(j, ...)``, on the scale of the current task's
    summed batch loss (reference §6.2).
    """

    Options = ReplayOptions

    def __init__(self, net, options, generator):
        super().__init__(net, options, generator)
        self.memory: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def trainable(self, task: int) -> list[torch.nn.Parameter]:
        params = super().trainable(task)
        if self.opts.multihead:  # old heads keep training on their replayed data
            params += [p for t, h in self.heads.items() if t != task for p in h.values()]
        return params

    def replay_loss(self, task: int, x: torch.Tensor, y: torch.Tensor,
                    batch_size: int) -> torch.Tensor:
        """Loss of earlier ``task`` on its kept data x [M, in], y [M, S]."""
        raise NotImplementedError

    def extra_loss(self, task: int, batch_size: int) -> torch.Tensor | None:
        if not self.memory:
            return None
        total = 0.0
        for j, (x, y) in self.memory.items():
            total = total + self.replay_loss(j, x, y, batch_size)
        return total

    def extra_state(self) -> dict[str, Any]:
        return {"memory": self.memory}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.memory = {int(t): xy for t, xy in state["memory"].items()}


class MultitaskStrategy(ReplayStrategy):
    """Keeps every task's data; each step adds the summed loss of a batch of B drawn from
    every earlier task, at weight 1.

    The upper bound that keeps everything (reference §6.2). Its batches are drawn as the
    original's: a shuffled loader per earlier task, epochs without replacement, made anew at
    every task's end and kept through the next task's retrains.
    """

    name = "multitask"

    def __init__(self, net, options, generator):
        super().__init__(net, options, generator)
        self.batches: dict[int, EpochBatches] = {}  # earlier task -> its loader's place

    def end_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        self.memory[task] = (x.detach().clone(), y.detach().clone())
        self.batches = {}  # every earlier task's loader begins a new epoch

    def replay_loss(self, task, x, y, batch_size):
        if x.shape[0] == 0:
            return torch.zeros((), device=x.device)
        batches = self.batches.get(task)
        if batches is None or batches.batch_size != batch_size:
            batches = EpochBatches(x.shape[0], batch_size, self.generator, x.device)
            self.batches[task] = batches
        idx = next(batches)
        return self.task_loss(self.task_weights(task), x[idx], y[idx])

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(),
                "batches": {t: b.state_dict() for t, b in self.batches.items()}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.batches = {}
        # a state saved before the batches were kept (they were drawn with replacement)
        # begins new epochs
        for t, saved in state.get("batches", {}).items():
            x = self.memory[int(t)][0]
            batches = EpochBatches(x.shape[0], saved["batch_size"], self.generator, x.device)
            batches.load_state_dict(saved)
            self.batches[int(t)] = batches


@dataclasses.dataclass
class CoresetOptions(ReplayOptions):
    """``coreset_size``: M kept transitions per task (the original: pusher 100, door 600)."""

    coreset_size: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        self.coreset_size = check_int("coreset_size", self.coreset_size)


class CoresetStrategy(ReplayStrategy):
    """Keeps M random transitions per task and replays all of them every step.

    Each earlier task adds its summed loss over its M points scaled by B / M (the original's
    weighting: one batch's worth per task).
    """

    name = "coreset"
    Options = CoresetOptions
    opts: CoresetOptions

    def end_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        m = min(self.opts.coreset_size, x.shape[0])
        idx = torch.randperm(x.shape[0], generator=self.generator)[:m].to(x.device)
        self.memory[task] = (x[idx].detach().clone(), y[idx].detach().clone())

    def replay_loss(self, task, x, y, batch_size):
        if x.shape[0] == 0:
            return torch.zeros((), device=x.device)
        return self.task_loss(self.task_weights(task), x, y) * (batch_size / x.shape[0])
