"""Cross-entropy method (CEM) over action sequences, the planner of the original HyperCRL.

Each iteration draws a population from a diagonal Gaussian over ``[H, A]``, scores it with the
objective, and refits mean and std to the ``elites`` best members. The hot path is a fixed
number of tensor operations per iteration on preallocated buffers: no numpy, no per-sample
Python, no data-dependent branches.

The original (reference §4.1) is ``CEMConfig(population=K, elites=E, iterations=5,
init_std=..., return_mode="final_best")``: it refits five times, then draws one more population
of K from the refitted distribution and executes the best member of that last draw, K * 6
objective evaluations per plan. ``return_mode="best"`` instead returns the best member of all
draws (never worse on the objective) and ``"mean"`` the final mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from hypercrl.plan.base import (
    BoxOptimizer,
    PlanSteps,
    check_fraction,
    check_positive,
    rank_returns_,
)

_TINY = 1e-12  # keeps std > 0 so that the truncated-normal bounds stay finite


@dataclass(frozen=True)
class CEMConfig:
    """Settings of :class:`CEM`. Population, elites and std default to the original's pusher
    planner; its iteration scheme is ``iterations=5, return_mode="final_best"`` (see the
    module).

    Attributes:
        population: samples per iteration (``K``).
        elites: best samples the distribution is refitted to, ``<= population``.
        iterations: populations drawn and refitted to per plan (``"final_best"`` draws one more).
        init_std: std of the first population, in action units.
        alpha: momentum; the new mean/std are ``alpha * old + (1 - alpha) * elite statistic``.
        bounds: ``"clip"`` clamps samples to the box; ``"truncated"`` samples the Gaussian
            truncated to the box (inverse CDF, no rejection loop).
        return_mode: ``"mean"`` returns the final distribution mean; ``"best"`` the best sample
            of all populations; ``"final_best"`` draws one more population of the last
            iteration's size from the refitted distribution (same bounds handling) and returns
            its best member (the original's ``choose_best``). Non-finite returns rank lowest.
        warm_start: start the next plan from this plan shifted by one step (the original
            started every plan from the box centre).
    """

    population: int = 500
    elites: int = 40
    iterations: int = 5
    init_std: float = 1.0
    alpha: float = 0.0
    bounds: Literal["clip", "truncated"] = "clip"
    return_mode: Literal["mean", "best", "final_best"] = "mean"
    warm_start: bool = False

    def __post_init__(self) -> None:
        check_positive(
            population=self.population, elites=self.elites, iterations=self.iterations,
            init_std=self.init_std,
        )
        if self.elites > self.population:
            raise ValueError(f"elites={self.elites} > population={self.population}")
        check_fraction("alpha", self.alpha, high_open=True)
        if self.bounds not in ("clip", "truncated"):
            raise ValueError(f"bounds={self.bounds!r} must be 'clip' or 'truncated'")
        if self.return_mode not in ("mean", "best", "final_best"):
            raise ValueError(
                f"return_mode={self.return_mode!r} must be 'mean', 'best' or 'final_best'"
            )


class CEM(BoxOptimizer):
    """Cross-entropy method; see :class:`CEMConfig` and :class:`~hypercrl.plan.base.BoxOptimizer`.

    Subclasses (iCEM) change the noise, the population schedule and the elites carried over;
    the iteration itself is shared.
    """

    def __init__(
        self,
        lower: Tensor | Sequence[float],
        upper: Tensor | Sequence[float],
        horizon: int,
        config: CEMConfig | None = None,
        *,
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(lower, upper, horizon, device=device, generator=generator, dtype=dtype)
        self.config = config = config if config is not None else CEMConfig()
        H, A = horizon, self.action_dim
        self._fresh = self._fresh_sizes()  # new samples drawn in each iteration
        self._n_refits = len(self._fresh)
        if config.return_mode == "final_best":
            self._fresh.append(self._fresh[-1])  # the final draw, scored but not refitted to
        self._keep = self._kept_elites()  # elites carried into the next iteration/plan
        self._mean_last = self._adds_mean_last()  # the mean joins the last population
        self._noise_filter = self._make_noise_filter()  # [H, H] time correlation, or None
        p_max = max(self._fresh) + self._keep + int(self._mean_last)
        kw = {"device": self.device, "dtype": dtype}
        self._white = torch.empty(p_max, H, A, **kw)
        self._noise = torch.empty(p_max, H, A, **kw) if self._noise_filter is not None else None
        self._pop = torch.empty(p_max, H, A, **kw)
        self._returns = torch.empty(p_max, **kw)
        self._elites = torch.empty(config.elites, H, A, **kw)
        self._init_mean = self.centre.clone()  # where the next plan starts (warm start)
        self._mean = torch.empty(H, A, **kw)
        self._std = torch.empty(H, A, **kw)
        self._best = torch.empty(H, A, **kw)
        self._best_return = torch.empty((), **kw)
        self._carried = torch.empty(self._keep, H, A, **kw)  # shifted elites of the last plan
        self._has_carried = False

    # hooks for subclasses -------------------------------------------------------------------
    def _fresh_sizes(self) -> list[int]:
        return [self.config.population] * self.config.iterations

    def _kept_elites(self) -> int:
        return 0

    def _adds_mean_last(self) -> bool:
        return False

    def _make_noise_filter(self) -> Tensor | None:
        return None

    # public ---------------------------------------------------------------------------------
    @property
    def mean(self) -> Tensor:
        """Mean ``[H, A]`` the next plan starts from (a copy)."""
        return self._init_mean.clone()

    def reset(self) -> None:
        """Start the next plan cold: box-centre mean, no carried elites."""
        self._init_mean.copy_(self.centre)
        self._has_carried = False

    def sequences_per_plan(self) -> int:
        """Every population's fresh samples and kept-elite slots (sampled too in the first),
        and the mean in the last."""
        return sum(self._fresh) + self._keep * len(self._fresh) + int(self._mean_last)

    def plan_steps(self) -> PlanSteps:
        """The next plan ``[H, A]`` inside the box, as a coroutine over its populations."""
        cfg = self.config
        self._mean.copy_(self._init_mean)
        self._std.fill_(cfg.init_std)
        self._best.copy_(self._init_mean)
        self._best_return.fill_(-math.inf)
        n_pop, n_refits = len(self._fresh), self._n_refits
        for i in range(n_pop):
            pop = self._populate(i, last=i == n_pop - 1)
            returns = self._returns[: pop.shape[0]]
            returns.copy_((yield pop))
            rank_returns_(returns)
            if i == n_refits:  # the "final_best" draw: its best member is the plan
                self._take_best(pop, returns)
                break
            if cfg.return_mode == "best":
                self._track_best(pop, returns)
            self._refit(pop, returns)
        plan = (self._mean if cfg.return_mode == "mean" else self._best).clone()
        self.clip_(plan)
        self._end_plan(plan)
        return plan

    # the iteration --------------------------------------------------------------------------
    def _populate(self, i: int, last: bool) -> Tensor:
        """Population ``[n, H, A]`` of iteration ``i`` in ``self._pop``: kept elites first
        (when there are any), then fresh samples, then the mean in the last iteration."""
        keep, n_fresh = self._keep, self._fresh[i]
        n = keep + n_fresh + int(self._mean_last and last)
        if i == 0:
            # the kept slots are sampled too: they stay fresh samples unless elites were carried
            self._sample_(self._pop[: keep + n_fresh])
            if self._has_carried:
                # last plan's elites shifted one step; their final step keeps its fresh sample
                self._pop[:keep, :-1].copy_(self._carried[:, 1:])
        else:
            self._sample_(self._pop[keep : keep + n_fresh])
            self._pop[:keep].copy_(self._elites[:keep])
        if self._mean_last and last:
            self._pop[n - 1].copy_(self._mean)
        return self._pop[:n]

    def _sample_(self, out: Tensor) -> Tensor:
        """Fill ``out [n, H, A]`` with samples of the current Gaussian, inside the box."""
        n = out.shape[0]
        z = self._white[:n].normal_(generator=self.generator)
        if self._noise_filter is not None:
            z = torch.matmul(self._noise_filter, z, out=self._noise[:n])  # correlate over H
        if self.config.bounds == "truncated":
            # inverse-CDF sampling of the truncated Gaussian, fed by the (possibly coloured)
            # standard normal z through its own CDF, so the time correlation survives
            std = self._std.clamp_min(_TINY)
            lo = torch.special.ndtr((self.lower - self._mean) / std)
            hi = torch.special.ndtr((self.upper - self._mean) / std)
            u = torch.special.ndtr(z, out=z).mul_(hi - lo).add_(lo)
            eps = torch.finfo(z.dtype).eps
            z = torch.special.ndtri(u.clamp_(eps, 1 - eps), out=z)
        torch.addcmul(self._mean, self._std, z, out=out)
        return self.clip_(out)

    def _track_best(self, pop: Tensor, returns: Tensor) -> None:
        top_return, top = returns.max(0)
        better = top_return > self._best_return
        # index_select keeps the index on the device; pop[top] may read a 0-dim index back
        candidate = torch.index_select(pop, 0, top.view(1))[0]
        self._best.copy_(torch.where(better, candidate, self._best))
        torch.maximum(self._best_return, top_return, out=self._best_return)

    def _take_best(self, pop: Tensor, returns: Tensor) -> None:
        top = returns.argmax()
        torch.index_select(pop, 0, top.view(1), out=self._best.unsqueeze(0))

    def _refit(self, pop: Tensor, returns: Tensor) -> None:
        # sorted so that the first `keep` elites are the best ones (iCEM carries those)
        idx = torch.topk(returns, self.config.elites, sorted=self._keep > 0).indices
        elites = torch.index_select(pop, 0, idx, out=self._elites)
        std, mean = torch.std_mean(elites, dim=0, correction=0)
        weight = 1.0 - self.config.alpha
        self._mean.lerp_(mean, weight)
        self._std.lerp_(std, weight)

    def _end_plan(self, plan: Tensor) -> None:
        if self.config.warm_start:
            self.shift_(plan, out=self._init_mean)
        if self._keep:
            self._carried.copy_(self._elites[: self._keep])
            self._has_carried = True
