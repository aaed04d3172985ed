"""Weight-penalty baselines: EWC (empirical diagonal Fisher) and Synaptic Intelligence."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch.func import functional_call, grad, vmap

from hypercrl.cl.base import check_bool, check_int, check_number
from hypercrl.cl.module import ModuleOptions, ModuleStrategy


@dataclasses.dataclass
class EWCOptions(ModuleOptions):
    """EWC settings.

    ``lam``: the original's ``ewc_beta`` = 1e4 (reference §6.2), literally: the penalty
    lam / 2 * sum_p F_p (theta_p - theta*_p)^2 is added to the task loss summed over the batch
    (as the original's), with F the per-sample empirical Fisher.
    ``online``: one running Fisher (decayed by ``gamma``) and one anchor instead of one term
    per task. ``fisher_samples``: cap on transitions used for the Fisher (None: all).
    Heads (multi-head, the default) are not penalised.
    """

    lam: float = 1e4
    online: bool = False
    gamma: float = 1.0
    fisher_samples: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.lam = check_number("lam", self.lam, minimum=0)
        self.online = check_bool("online", self.online)
        self.gamma = check_number("gamma", self.gamma, minimum=0, maximum=1)
        self.fisher_samples = check_int("fisher_samples", self.fisher_samples, optional=True)


class EWCStrategy(ModuleStrategy):
    """Elastic weight consolidation: lam/2 * sum_k sum_p F_k,p (theta_p - theta*_k,p)^2."""

    name = "ewc"
    Options = EWCOptions
    opts: EWCOptions

    def __init__(self, net, options, generator):
        super().__init__(net, options, generator)
        # (fisher, anchor) per consolidated task, name -> tensor; one entry when online
        self.terms: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []

    def fisher(self, task: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Empirical diagonal Fisher: sum over the N samples of squared per-sample gradients of
        0.5 (mu - y)^2 exp(-logvar) + 0.5 logvar (logvar = 0 if deterministic), divided by
        N - 1 as the original does (reference §6.2)."""
        if self.opts.fisher_samples is not None and x.shape[0] > self.opts.fisher_samples:
            idx = torch.randperm(x.shape[0], generator=self.generator)[: self.opts.fisher_samples]
            x, y = x[idx.to(x.device)], y[idx.to(x.device)]
        shared = {k: v.detach() for k, v in self.shared().items()}
        fixed = {k: v.detach() for k, v in self.task_weights(task).items() if k not in shared}

        def nll(params, xi, yi):
            mean, logvar = functional_call(self.net, {**params, **fixed}, (xi[None],))
            if logvar is None:
                return 0.5 * (mean - yi).pow(2).sum()
            return (0.5 * (mean - yi).pow(2) * torch.exp(-logvar) + 0.5 * logvar).sum()

        per_sample = vmap(grad(nll), in_dims=(None, 0, 0))
        total = {k: torch.zeros_like(v) for k, v in shared.items()}
        for start in range(0, x.shape[0], 1024):
            g = per_sample(shared, x[start : start + 1024], y[start : start + 1024])
            for k in total:
                total[k] += g[k].pow(2).sum(0)
        return {k: v / max(x.shape[0] - 1, 1) for k, v in total.items()}

    def end_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        fisher = self.fisher(task, x, y)
        anchor = {k: v.detach().clone() for k, v in self.shared().items()}
        if self.opts.online and self.terms:
            old, _ = self.terms[0]
            fisher = {k: self.opts.gamma * old[k] + fisher[k] for k in fisher}
            self.terms = []
        self.terms.append((fisher, anchor))

    def extra_loss(self, task: int, batch_size: int) -> torch.Tensor | None:
        if not self.terms:
            return None
        params = self.shared()
        total = 0.0
        for fisher, anchor in self.terms:
            total = total + sum(
                (fisher[k] * (params[k] - anchor[k]).pow(2)).sum() for k in fisher
            )
        return 0.5 * self.opts.lam * total

    def extra_state(self) -> dict[str, Any]:
        return {"terms": self.terms}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.terms = [(dict(f), dict(a)) for f, a in state["terms"]]


@dataclasses.dataclass
class SIOptions(ModuleOptions):
    """Synaptic Intelligence: strength ``c`` and damping ``xi`` (the original: 0.1, 1e-3).

    The path integral uses the gradient of the summed objective, as the original's. Heads
    (multi-head, the default) are not penalised."""

    c: float = 0.1
    xi: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        self.c = check_number("c", self.c, minimum=0)
        self.xi = check_number("xi", self.xi, minimum=0, above=True)


class SIStrategy(ModuleStrategy):
    """Synaptic Intelligence (Zenke et al. 2017): penalty c * sum_p Omega_p (theta_p - theta'_p)^2.

    The path integral w_p accumulates -g_p * (change of theta_p) at every step, with g the
    gradient of the total loss; at task end Omega += w / (task change^2 + xi).
    """

    name = "si"
    Options = SIOptions
    opts: SIOptions

    def __init__(self, net, options, generator):
        super().__init__(net, options, generator)
        shared = self.shared()
        self.omega = {k: torch.zeros_like(v) for k, v in shared.items()}
        self.path = {k: torch.zeros_like(v) for k, v in shared.items()}
        self.anchor = {k: v.detach().clone() for k, v in shared.items()}
        self._before: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def extra_loss(self, task: int, batch_size: int) -> torch.Tensor | None:
        if task == 0:
            return None
        params = self.shared()
        return self.opts.c * sum(
            (self.omega[k] * (params[k] - self.anchor[k]).pow(2)).sum() for k in params
        )

    def before_step(self) -> None:
        self._before = {
            k: (p.grad.detach().clone() if p.grad is not None else None, p.detach().clone())
            for k, p in self.shared().items()
        }

    @torch.no_grad()
    def after_step(self) -> None:
        for k, p in self.shared().items():
            g, old = self._before[k]
            if g is not None:
                self.path[k] -= g * (p - old)

    @torch.no_grad()
    def end_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        for k, p in self.shared().items():
            self.omega[k] += self.path[k] / ((p - self.anchor[k]).pow(2) + self.opts.xi)
            self.path[k].zero_()
            self.anchor[k] = p.detach().clone()

    def extra_state(self) -> dict[str, Any]:
        return {"omega": self.omega, "path": self.path, "anchor": self.anchor}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.omega, self.path, self.anchor = state["omega"], state["path"], state["anchor"]
