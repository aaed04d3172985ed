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
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Any, ClassVar

import torch

from hypercrl.model.target import TargetNet, gaussian_nll


def make_adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with torch's fused kernel where the device has one, else the foreach one."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


@torch.no_grad()
def clip_grad_norm(
    params: list[torch.Tensor], max_norm: float, outside: torch.Tensor | None = None
) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` (same norm, same scale factor), which on the CPU
    skips its multiplication by 1.0 when the norm is within ``max_norm``: one pass over the
    gradients instead of two. Returns the total norm.

    ``outside``: the norm of a gradient kept outside ``params`` (a rank-one factor,
    :mod:`hypercrl.cl.rank_one`). It counts in the total; the caller scales that gradient
    by :func:`clip_factor` of the returned total, as ``params``' gradients were scaled."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads and outside is None:
        return torch.zeros(())
    norms = list(torch._foreach_norm(grads)) + ([outside] if outside is not None else [])
    if norms[0].device.type != "cpu":  # deciding would wait for the device: scale always
        if outside is None:
            return torch.nn.utils.clip_grad_norm_(params, max_norm)
        total = torch.linalg.vector_norm(torch.stack(norms))
        torch._foreach_mul_(grads, clip_factor(total, max_norm))
        return total
    total = torch.linalg.vector_norm(torch.stack(norms))
    coef = clip_factor(total, max_norm)
    if coef < 1.0:
        torch._foreach_mul_(grads, coef)
    return total


def clip_factor(total: torch.Tensor, max_norm: float) -> torch.Tensor:
    """The factor :func:`clip_grad_norm` scales gradients by for a total norm ``total``:
    ``max_norm / (total + 1e-6)``, at most 1 (torch's formula)."""
    return torch.clamp(max_norm / (total + 1e-6), max=1.0)


# --- option checks: one line, naming the option and what is wrong ------------------------------
def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: bool = False,
    optional: bool = False,
) -> float | None:
    """``value`` as a finite float, >= ``minimum`` (> with ``above``) and <= ``maximum``;
    None passes with ``optional``. ValueError naming ``name`` otherwise."""
    if value is None and optional:
        return None
    want = "a finite number"
    if minimum is not None and maximum is not None:
        want += f" in {'(' if above else '['}{minimum:g}, {maximum:g}]"
    elif minimum is not None:
        want += f" {'>' if above else '>='} {minimum:g}"
    elif maximum is not None:
        want += f" <= {maximum:g}"
    if optional:
        want = "None or " + want
    try:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        number = float(value) if ok else math.nan
    except (OverflowError, TypeError, ValueError):
        ok, number = False, math.nan
    ok = ok and math.isfinite(number)
    if ok and minimum is not None:
        ok = number > minimum if above else number >= minimum
    if ok and maximum is not None:
        ok = number <= maximum
    if not ok:
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return number


def check_int(
    name: str, value: Any, *, minimum: int | None = 1, optional: bool = False
) -> int | None:
    """``value`` as an int >= ``minimum`` (None: any int; None passes with ``optional``);
    ValueError naming ``name`` otherwise."""
    if value is None and optional:
        return None
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and minimum is not None:
        ok = value >= minimum
    if not ok:
        want = "an integer" + (f" >= {minimum}" if minimum is not None else "")
        raise ValueError(f"{name} must be {'None or ' if optional else ''}{want}, got {value!r}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is True or False; ValueError naming ``name`` otherwise."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Collection[str]) -> str:
    """``value`` if it is one of ``choices``; ValueError naming ``name`` and them otherwise."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_widths(name: str, value: Any) -> tuple[int, ...]:
    """``value`` (a non-empty tuple or list of ints >= 1) as a tuple; ValueError naming
    ``name`` otherwise."""
    ok = isinstance(value, (tuple, list)) and len(value) > 0 and all(
        isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1 for h in value
    )
    if not ok:
        raise ValueError(
            f"{name} must be a non-empty tuple or list of integers >= 1, got {value!r}"
        )
    return tuple(int(h) for h in value)


@dataclasses.dataclass
class StrategyOptions:
    """Options every strategy takes; subclasses add their own fields."""

    lr: float = 1e-3
    clip: float | None = None

    def __post_init__(self) -> None:
        self.lr = check_number("lr", self.lr, minimum=0, above=True)
        self.clip = check_number("clip", self.clip, minimum=0, above=True, optional=True)


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

    @property
    def members(self) -> int:
        """M, the models per task (an ensemble's members); ``weights`` gives M per task."""
        return 1

    @abstractmethod
    def weights(self, tasks: list[int]) -> dict[str, torch.Tensor]:
        """Target weights of ``tasks``: name -> [T * M, *shape], task-major (task i's members
        at rows i * M .. i * M + M - 1; M = ``members``, 1 for every method but an
        ensemble)."""

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
