"""The trajectory-optimiser protocol and what every optimiser shares.

An optimiser sees only an objective: a batch of action sequences ``[P, H, A]`` maps to returns
``[P]`` (higher is better). It is built for one action box and one horizon, returns a plan
``[H, A]`` inside that box, keeps its own warm-start state and forgets it on :meth:`reset`.

A :class:`BoxOptimizer` writes one plan as a coroutine (:data:`PlanSteps`) that yields the
populations it wants scored and receives their returns. :meth:`BoxOptimizer.optimize` drives it
with an objective; :func:`hypercrl.plan.lockstep.plan_together` drives the plans of several
optimisers at once and scores all their populations in one objective call.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from hypercrl.devices import resolve_device

Objective = Callable[[Tensor], Tensor]
"""Action sequences ``[P, H, A]`` -> returns ``[P]``; higher is better, NaN/inf rank lowest."""

PlanSteps = Generator[Tensor, Tensor, Tensor]
"""One plan as a coroutine: yields each population ``[P, H, A]`` to be scored, receives its
returns ``[P]`` (``send``), and returns the plan ``[H, A]`` (``StopIteration.value``). A yielded
population is a view of the optimiser's buffers, valid until its returns are sent; the returns
are copied at once. Drivers run it under ``torch.no_grad``."""


def run_plan(steps: PlanSteps, objective: Objective) -> Tensor:
    """Drive one plan to its end, scoring every population with ``objective``; the plan."""
    population = next(steps)
    while True:
        try:
            population = steps.send(objective(population))
        except StopIteration as done:
            return done.value


@runtime_checkable
class TrajectoryOptimizer(Protocol):
    """What the MPC agent needs from an optimiser."""

    horizon: int
    lower: Tensor  # [A]
    upper: Tensor  # [A]
    device: torch.device

    def optimize(self, objective: Objective) -> Tensor:
        """Best action sequence ``[H, A]`` found for ``objective``, inside the bounds."""
        ...

    def reset(self) -> None:
        """Forget all warm-start state (call between episodes and tasks)."""
        ...


def check_positive(**values: float) -> None:
    """ValueError naming every argument that is not > 0."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name}={value!r} must be > 0")


def check_fraction(name: str, value: float, *, high_open: bool = False) -> None:
    """ValueError unless 0 <= value <= 1 (or < 1 with ``high_open``)."""
    ok = 0.0 <= value < 1.0 if high_open else 0.0 <= value <= 1.0
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name}={value!r} must lie in [0, 1{bracket}")


class BoxOptimizer(ABC):
    """Shared construction of an optimiser over the box ``[lower, upper]^H``.

    Args:
        lower: lowest action ``[A]`` (array-like), finite.
        upper: highest action ``[A]`` (array-like), finite, ``>= lower``.
        horizon: plan length ``H >= 1``.
        device: ``"cpu"`` (default) or ``"cuda[:i]"``; every buffer lives there.
        generator: the source of all sampling noise, on ``device``. ``None`` draws a seed from
            torch's global generator, so ``torch.manual_seed`` makes runs reproducible too.
        dtype: floating dtype of actions and buffers.
    """

    def __init__(
        self,
        lower: Tensor | Sequence[float],
        upper: Tensor | Sequence[float],
        horizon: int,
        *,
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.device = resolve_device(device)
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon={horizon!r} must be an int >= 1")
        lo = torch.as_tensor(lower, dtype=dtype).to(self.device)
        hi = torch.as_tensor(upper, dtype=dtype).to(self.device)
        if lo.dim() != 1 or hi.shape != lo.shape or lo.numel() == 0:
            raise ValueError(
                f"bounds lower {tuple(lo.shape)} and upper {tuple(hi.shape)} must both be [A]"
            )
        if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
            raise ValueError("bounds lower and upper must be finite")
        if (lo > hi).any():
            bad = torch.nonzero(lo > hi)[0, 0]
            raise ValueError(f"bounds: lower > upper at action index {int(bad)}")
        if generator is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
            generator = torch.Generator(device=self.device).manual_seed(seed)
        if torch.device(generator.device).type != self.device.type:
            raise ValueError(
                f"generator on {generator.device} but the optimiser's device is {self.device}"
            )
        self.horizon = horizon
        self.action_dim = lo.numel()
        self.lower = lo
        self.upper = hi
        self.dtype = dtype
        self.generator = generator
        # the centre of the box: the cold-start mean and what a shifted plan is padded with
        self.centre = ((lo + hi) / 2).expand(horizon, -1).contiguous()  # [H, A]
        # bounds per [H, A] element: clamping [P, H, A] against them runs as one flat loop,
        # about 10x faster on CPU than broadcasting the [A] bounds over a 2-wide inner dim
        self._lower_ha = lo.expand(horizon, -1).contiguous()
        self._upper_ha = hi.expand(horizon, -1).contiguous()

    @abstractmethod
    def plan_steps(self) -> PlanSteps:
        """The next plan as a coroutine (:data:`PlanSteps`); driving it to its end is exactly
        ``optimize`` with the objective that scored its populations."""

    @torch.no_grad()
    def optimize(self, objective: Objective) -> Tensor:
        """Best action sequence ``[H, A]`` found for ``objective``, inside the bounds."""
        return run_plan(self.plan_steps(), objective)

    @abstractmethod
    def reset(self) -> None:
        """Forget all warm-start state."""

    @abstractmethod
    def sequences_per_plan(self) -> int:
        """Action sequences scored per ``optimize`` call (times the horizon: model
        evaluations per plan step)."""

    def clip_(self, actions: Tensor) -> Tensor:
        """Clamp action sequences ``[..., H, A]`` into the box in place and return them."""
        return torch.clamp(actions, self._lower_ha, self._upper_ha, out=actions)

    def shift_(self, plan: Tensor, out: Tensor) -> Tensor:
        """``out [H, A]`` = ``plan`` moved one step earlier, its last step the box centre."""
        out[:-1].copy_(plan[1:])
        out[-1].copy_(self.centre[-1])
        return out


def rank_returns_(returns: Tensor) -> Tensor:
    """Replace NaN and +-inf in ``returns [P]`` by -inf in place: a diverged rollout never wins."""
    return returns.masked_fill_(~torch.isfinite(returns), -math.inf)
