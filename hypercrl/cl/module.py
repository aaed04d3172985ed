"""Strategies that train the target network's own parameters: the shared machinery."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from hypercrl.cl.base import Strategy, StrategyOptions, check_bool, clip_grad_norm, make_adam


@dataclasses.dataclass
class ModuleOptions(StrategyOptions):
    """Baselines train with Adam at lr 1e-3, re-created every task, no gradient clipping
    (reference §3.4, §6.1).

    ``multihead``: one output layer per task, chosen by the task id, as all the original's
    baselines (reference §6.1): a new randomly initialised head at every task start; earlier
    heads are never penalised. False: one head shared by all tasks.
    """

    lr: float = 1e-3
    multihead: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.multihead = check_bool("multihead", self.multihead)


class ModuleStrategy(Strategy):
    """Trains ``net``'s parameters directly; subclasses add replay or penalties via hooks."""

    Options = ModuleOptions
    opts: ModuleOptions

    def __init__(self, net, options, generator):
        super().__init__(net, options, generator)
        n = len(net.layers)
        self.head_names = (f"layers.{n - 1}.weight", f"layers.{n - 1}.bias")
        self.heads: dict[int, dict[str, torch.nn.Parameter]] = {}
        self.opt: torch.optim.Adam | None = None
        self.reset_parameters()

    # --- parameters -----------------------------------------------------------------------
    def shared(self) -> dict[str, torch.nn.Parameter]:
        """Parameters shared by all tasks (all of them unless multihead)."""
        return {
            k: p
            for k, p in self.net.named_parameters()
            if not (self.opts.multihead and k in self.head_names)
        }

    def task_weights(self, task: int) -> dict[str, torch.Tensor]:
        """Live (trainable) weights used for ``task``."""
        w = dict(self.net.named_parameters())
        if self.opts.multihead:
            w.update(self.heads[task])
        return w

    def trainable(self, task: int) -> list[torch.nn.Parameter]:
        params = list(self.shared().values())
        if self.opts.multihead:
            params += list(self.heads[task].values())
        return params

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-draw every layer like nn.Linear does, from this strategy's generator."""
        for layer in self.net.layers:
            _uniform_linear_(layer.weight, layer.bias, self.generator)

    def _new_head(self) -> dict[str, torch.nn.Parameter]:
        w = torch.empty_like(self.net.get_parameter(self.head_names[0]))
        b = torch.empty_like(self.net.get_parameter(self.head_names[1]))
        _uniform_linear_(w, b, self.generator)
        w_name, b_name = self.head_names
        return {w_name: torch.nn.Parameter(w), b_name: torch.nn.Parameter(b)}

    # --- hooks ----------------------------------------------------------------------------
    def begin_task(self, task: int) -> None:
        if self.opts.multihead:
            self.heads[task] = self._new_head()
        self.num_tasks = task + 1
        self.opt = make_adam(self.trainable(task), self.opts.lr)

    def extra_loss(self, task: int, batch_size: int) -> torch.Tensor | None:
        """Replay or penalty term added to the summed task loss of a batch of ``batch_size``
        (None: nothing)."""
        return None

    def before_step(self) -> None: ...

    def after_step(self) -> None: ...

    def train_step(self, task: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One Adam step on task loss (summed over the batch) + ``extra_loss``."""
        self.opt.zero_grad(set_to_none=True)
        loss = self.task_loss(self.task_weights(task), x, y)
        total, logs = loss, {"loss": loss.detach() / x.shape[0]}
        extra = self.extra_loss(task, x.shape[0])
        if extra is not None:
            total = loss + extra
            logs["extra"] = extra.detach()
        total.backward()
        if self.opts.clip:
            clip_grad_norm(self.opt.param_groups[0]["params"], self.opts.clip)
        self.before_step()
        self.opt.step()
        self.after_step()
        return logs

    def weights(self, tasks: list[int]) -> dict[str, torch.Tensor]:
        per_task = [self.task_weights(t) for t in tasks]
        return {k: torch.stack([w[k] for w in per_task]) for k in per_task[0]}

    # --- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "num_tasks": self.num_tasks,
            "net": self.net.state_dict(),
            "heads": {t: {k: v.detach() for k, v in h.items()} for t, h in self.heads.items()},
            "opt": self.opt.state_dict() if self.opt else None,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_tasks = state["num_tasks"]
        self.net.load_state_dict(state["net"])
        self.heads = {
            int(t): {k: torch.nn.Parameter(v.clone()) for k, v in h.items()}
            for t, h in state["heads"].items()
        }
        self.load_extra_state(state["extra"])
        if self.num_tasks and state["opt"] is not None:
            self.opt = make_adam(self.trainable(self.num_tasks - 1), self.opts.lr)
            self.opt.load_state_dict(state["opt"])

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None: ...


class FinetuneStrategy(ModuleStrategy):
    """One model trained on each task in turn, nothing protects old tasks (``finetune``).

    Multi-head (the default): the shared trunk and the current task's new head train; earlier
    heads stay as their task left them."""

    name = "finetune"


class SingleStrategy(ModuleStrategy):
    """A fresh model per task (``single``): the reference for forward transfer.

    At every task after the first the trunk is re-initialised (and, multi-head, a new head
    added). Each finished task keeps a frozen copy of its weights.
    """

    name = "single"

    def __init__(self, net, options, generator):
        super().__init__(net, options, generator)
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def begin_task(self, task: int) -> None:
        if task > 0:
            self.reset_parameters()
        super().begin_task(task)

    def end_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        self.snapshots[task] = {k: v.detach().clone() for k, v in self.task_weights(task).items()}

    def task_weights(self, task: int) -> dict[str, torch.Tensor]:
        return self.snapshots.get(task) or super().task_weights(task)

    def extra_state(self) -> dict[str, Any]:
        return {"snapshots": self.snapshots}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.snapshots = {int(t): s for t, s in state["snapshots"].items()}


@torch.no_grad()
def _uniform_linear_(w: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> None:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, as nn.Linear initialises."""
    bound = 1.0 / math.sqrt(w.shape[1])
    w.copy_((torch.rand(w.shape, generator=generator) * 2 - 1) * bound)
    b.copy_((torch.rand(b.shape, generator=generator) * 2 - 1) * bound)
