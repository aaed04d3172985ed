"""Per-task standardisation of model inputs and (optionally) targets."""

from __future__ import annotations

import math

import torch
from torch import nn

MIN_STD = 1e-6


class Normalizer(nn.Module):
    """Mean/std of inputs [N, in_dim] and targets [N, out_dim] of one task.

    Refitted on the task's data at every ``fit`` until ``freeze()`` (task end); afterwards it
    never changes, so the weights stored for that task keep meaning what they meant. A
    standard deviation below 1e-6 counts as 1 (constant dimensions pass through centred).

    ``normalize_targets=False`` (the original's rule, reference §1.2: inputs standardised,
    state deltas trained raw) keeps the target statistics at y_mean = 0, y_std = 1, so
    ``norm_y`` and ``denorm_y`` are the identity. The flag is not part of the state_dict (the
    owner's config records it), so state_dicts written before the flag existed still load.

    It also keeps the range of the states the task's data visited (``s_low``, ``s_high``,
    per state dimension; -inf/inf until :meth:`fit_bounds`), which a predictor may clamp its
    predictions to (``ContinualDynamics(clip_states=True)``). State_dicts written before the
    range existed load with the unbounded range.
    """

    def __init__(self, in_dim: int, out_dim: int, normalize_targets: bool = False) -> None:
        super().__init__()
        self.normalize_targets = normalize_targets
        self.register_buffer("x_mean", torch.zeros(in_dim))
        self.register_buffer("x_std", torch.ones(in_dim))
        self.register_buffer("y_mean", torch.zeros(out_dim))
        self.register_buffer("y_std", torch.ones(out_dim))
        self.register_buffer("frozen", torch.tensor(False))
        self.register_buffer("s_low", torch.full((out_dim,), -math.inf))
        self.register_buffer("s_high", torch.full((out_dim,), math.inf))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if bool(self.frozen):
            raise RuntimeError("normaliser is frozen: its task has ended")
        fitted = (("x", x), ("y", y)) if self.normalize_targets else (("x", x),)
        for name, data in fitted:
            mean = data.mean(0)
            std = data.std(0) if data.shape[0] > 1 else torch.ones_like(mean)
            std = torch.where(std < MIN_STD, torch.ones_like(std), std)
            getattr(self, f"{name}_mean").copy_(mean)
            getattr(self, f"{name}_std").copy_(std)

    @torch.no_grad()
    def fit_bounds(self, states: torch.Tensor) -> None:
        """The range of ``states`` [N, out_dim] (the task's states and next states so far)."""
        if bool(self.frozen):
            raise RuntimeError("normaliser is frozen: its task has ended")
        self.s_low.copy_(states.amin(0))
        self.s_high.copy_(states.amax(0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        for name in ("s_low", "s_high"):  # absent from state_dicts older than the range
            state_dict.setdefault(prefix + name, getattr(self, name).clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def freeze(self) -> None:
        self.frozen.fill_(True)

    def norm_x(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean) / self.x_std

    def norm_y(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.y_mean) / self.y_std

    def denorm_y(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.y_std + self.y_mean
