"""Which seen task explains some transitions best: every task's model scored at once.

Each task's weights (generated together, ``[T, *shape]``), its own input and target
standardisation, and one batched forward give every task's prediction of the same
transitions. Scores are losses, lower is better, comparable across tasks:

* deterministic models: the squared error of each target dimension in raw target space,
  divided by that dimension's mean squared error over all scored tasks, then averaged over
  dimensions and transitions (so every dimension counts alike whatever its units, and one
  task alone scores 1);
* probabilistic models: the Gaussian negative log-likelihood of the raw targets per
  transition (summed over dimensions, constant terms dropped), each task's variance mapped back
  to raw units.
"""

from __future__ import annotations

import dataclasses

import torch

from hypercrl.model.normalizer import Normalizer
from hypercrl.model.spec import StateSpec
from hypercrl.model.target import TargetNet


@dataclasses.dataclass(frozen=True)
class TaskInference:
    """The best task, and the score (a loss, lower is better) of every scored task."""

    task: int
    scores: list[float]
    measure: str  # "normalised squared error" or "negative log-likelihood"


@torch.no_grad()
def task_errors(net: TargetNet, spec: StateSpec, normalizers: list[Normalizer],
                weights: dict[str, torch.Tensor], states: torch.Tensor, actions: torch.Tensor,
                next_states: torch.Tensor, members: int = 1
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every task's prediction error of the same transitions, in one batched forward.

    Tasks ``0..T-1`` (``weights`` name -> ``[T * M, *shape]``, task-major, M ``members`` per
    task; ``normalizers[t]``), transitions ``[N, S]``, ``[N, A]``, ``[N, S]``. Returns the
    error of the predicted mean ``[T, N, S]`` in raw target units (an ensemble's: of its
    members' mean) and, for a probabilistic model, its log-variance in raw units (an
    ensemble's: of the members' mixture), else None."""
    x = torch.cat([spec.features(states), actions], dim=1)  # [N, in]
    y = spec.targets(states, next_states)  # [N, S], raw target space
    norms = [n for n in normalizers for _ in range(members)]  # one per member
    x_mean = torch.stack([n.x_mean for n in norms])[:, None]  # [T * M, 1, in]
    x_std = torch.stack([n.x_std for n in norms])[:, None]
    y_mean = torch.stack([n.y_mean for n in norms])[:, None]  # [T * M, 1, S]
    y_std = torch.stack([n.y_std for n in norms])[:, None]
    mean, logvar = net.run(weights, (x - x_mean) / x_std)  # [T * M, N, S] each
    err = mean * y_std + y_mean - y  # raw units
    log_var = None if logvar is None else logvar + 2 * torch.log(y_std)
    if members == 1:
        return err, log_var
    err = err.unflatten(0, (-1, members))  # [T, M, N, S]
    if log_var is not None:  # the mixture's variance: mean variance + variance of the means
        var = log_var.unflatten(0, (-1, members)).exp().mean(1) + err.var(1, correction=0)
        log_var = var.log()
    return err.mean(1), log_var


@torch.no_grad()
def task_scores(net: TargetNet, spec: StateSpec, normalizers: list[Normalizer],
                weights: dict[str, torch.Tensor], states: torch.Tensor, actions: torch.Tensor,
                next_states: torch.Tensor, members: int = 1) -> TaskInference:
    """Score tasks ``0..T-1`` (``weights`` name -> ``[T * M, *shape]``, ``normalizers[t]``)
    on transitions ``[N, S]``, ``[N, A]``, ``[N, S]`` in one batched forward."""
    err, log_var = task_errors(net, spec, normalizers, weights, states, actions, next_states,
                               members)
    if log_var is None:
        sq = err.square()
        scores = (sq / sq.mean(dim=(0, 1), keepdim=True).clamp_min(1e-12)).mean(dim=(1, 2))
        measure = "normalised squared error"
    else:
        scores = (err.square() * torch.exp(-log_var) + log_var).sum(-1).mean(-1) / 2
        measure = "negative log-likelihood"
    return TaskInference(int(scores.argmin()), scores.tolist(), measure)
