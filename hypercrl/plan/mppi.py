"""Model-predictive path integral control (MPPI, Williams et al. 2017), as a plan optimiser.

Keeps a nominal plan ``U [H, A]``. Each iteration perturbs it with Gaussian noise of std
``noise_sigma``, scores the perturbed (box-clipped) sequences, and moves ``U`` to their
softmax-weighted average with temperature ``temperature``: ``w_p ~ exp(R_p / temperature)``.
The action-cost term of the original derivation is left to the reward, which already penalises
actions here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from hypercrl.plan.base import (
    BoxOptimizer,
    PlanSteps,
    check_fraction,
    check_positive,
    rank_returns_,
)


@dataclass(frozen=True)
class MPPIConfig:
    """Settings of :class:`MPPI`.

    Attributes:
        population: perturbed sequences per iteration.
        iterations: weighted updates per plan.
        temperature: ``lambda > 0``; smaller follows the best samples more greedily.
        noise_sigma: std of the perturbations, in action units.
        smoothing: ``rho in [0, 1)``; the perturbations are an AR(1) process along the horizon,
            ``e_h = rho * e_{h-1} + sqrt(1 - rho^2) * w_h``, which keeps their std at
            ``noise_sigma`` while making consecutive actions alike (0: white noise).
        warm_start: start the next plan from this one shifted by one step.
    """

    population: int = 500
    iterations: int = 1
    temperature: float = 1.0
    noise_sigma: float = 0.5
    smoothing: float = 0.0
    warm_start: bool = True

    def __post_init__(self) -> None:
        check_positive(
            population=self.population, iterations=self.iterations,
            temperature=self.temperature, noise_sigma=self.noise_sigma,
        )
        check_fraction("smoothing", self.smoothing, high_open=True)


def ar1_filter(
    horizon: int, rho: float, *, dtype: torch.dtype = torch.float32, device: torch.device | None
) -> Tensor:
    """Lower-triangular ``L [H, H]`` with ``L @ w`` the stationary unit-variance AR(1) process
    ``e_0 = w_0``, ``e_h = rho * e_{h-1} + sqrt(1 - rho^2) * w_h`` for white ``w [..., H, A]``."""
    h = torch.arange(horizon, dtype=torch.float64)
    lag = h[:, None] - h[None, :]
    filt = torch.where(lag >= 0, rho ** lag.clamp_min(0), torch.zeros(()))
    filt[:, 1:] *= math.sqrt(1.0 - rho**2)
    return filt.to(dtype=dtype, device=device)


class MPPI(BoxOptimizer):
    """MPPI over ``[H, A]``; construction as :class:`~hypercrl.plan.base.BoxOptimizer`."""

    def __init__(
        self,
        lower: Tensor | Sequence[float],
        upper: Tensor | Sequence[float],
        horizon: int,
        config: MPPIConfig | None = None,
        *,
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(lower, upper, horizon, device=device, generator=generator, dtype=dtype)
        self.config = config = config if config is not None else MPPIConfig()
        P, H, A = config.population, horizon, self.action_dim
        kw = {"device": self.device, "dtype": dtype}
        self._filter = (
            ar1_filter(H, config.smoothing, **kw) if config.smoothing > 0 else None
        )  # [H, H]
        self._white = torch.empty(P, H, A, **kw)
        self._noise = torch.empty(P, H, A, **kw)
        self._pop = torch.empty(P, H, A, **kw)
        self._returns = torch.empty(P, **kw)
        self._weights = torch.empty(P, **kw)
        self._plan = self.centre.clone()  # the nominal plan U, kept across calls (warm start)

    @property
    def mean(self) -> Tensor:
        """Nominal plan ``[H, A]`` the next call starts from (a copy)."""
        return self._plan.clone()

    def reset(self) -> None:
        """Start the next plan cold, from the box centre."""
        self._plan.copy_(self.centre)

    def sequences_per_plan(self) -> int:
        return self.config.population * self.config.iterations

    def plan_steps(self) -> PlanSteps:
        """The next plan ``[H, A]`` inside the box, as a coroutine over its populations."""
        cfg = self.config
        plan = self._plan
        flat_pop = self._pop.view(cfg.population, -1)
        tiny = torch.finfo(self.dtype).tiny
        for _ in range(cfg.iterations):
            noise = self._white.normal_(generator=self.generator)
            if self._filter is not None:
                noise = torch.matmul(self._filter, noise, out=self._noise)
            torch.add(plan, noise, alpha=cfg.noise_sigma, out=self._pop)
            self.clip_(self._pop)
            returns = self._returns.copy_((yield self._pop))
            rank_returns_(returns)
            # softmax without NaN when every return is -inf: then all weights are 0 and U stays
            top = returns.max()
            top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
            weights = torch.sub(returns, top, out=self._weights).div_(cfg.temperature).exp_()
            total = weights.sum()
            update = (weights @ flat_pop).view_as(plan) / total.clamp_min(tiny)
            plan.copy_(torch.where(total > 0, update, plan))
        result = self.clip_(plan.clone())
        if cfg.warm_start:
            self.shift_(result, out=self._plan)
        else:
            self._plan.copy_(self.centre)
        return result
