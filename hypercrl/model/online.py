"""An online world model that cannot forget: ridge regression on fixed sparse random features.

The world model of OA ("Continual Reinforcement Learning by Planning with Online World
Models", Liu et al., ICML 2025, arXiv 2507.09177; its features after Losse, Liu et al., ICLR
2024): a linear model over fixed nonlinear features, fitted Follow-The-Leader, i.e. to every
transition seen so far, in closed form. Nothing is ever overwritten: the sufficient statistics
(``A = sum phi phi^T``, ``B = sum phi y^T``) only grow, so the solution after task t is the
least-squares fit to all data of tasks 0..t, and no task id is used.

Features of a model input x (the state's features and the action): x is standardised with the
statistics of the first data the model sees (then frozen, so the features never change),
projected by a fixed Gaussian matrix to ``projections`` values, and each value is encoded by
soft binning over ``bins`` evenly spaced centres on [-span, span] (a triangle of one bin's
width around each centre: at most two nonzero entries per projection, a sparse, locality
sensitive code), plus a constant. Targets are the state spec's (deltas, wrapped angles, ...).
The weights are ``W = (A + ridge * I)^-1 B``, solved when :meth:`OnlineDynamics.solve` is
called. Our reading of the papers; simplifications: the system is solved densely at each
retrain point rather than by sparse incremental updates at every step (the same solution).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hypercrl.io import atomic_save, load_checked
from hypercrl.model.spec import StateSpec

FORMAT = "hypercrl.OnlineDynamics"
FORMAT_VERSION = 1


@dataclasses.dataclass
class OnlineOptions:
    """The OA world model's settings (method ``oa``)."""

    projections: int = 64
    bins: int = 16
    span: float = 3.0
    ridge: float = 10.0

    def __post_init__(self) -> None:
        for name, least in (("projections", 1), ("bins", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        for name in ("span", "ridge"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
            setattr(self, name, float(value))


class OnlineDynamics:
    """The OA world model behind the ``ContinualDynamics`` calls a model-based learner makes.

    One model for every task: ``predictor(task)`` and ``mse(..., task)`` ignore ``task``;
    ``begin_task``/``end_task`` only count tasks. :meth:`add` absorbs transitions,
    :meth:`solve` refits the weights to everything absorbed.
    """

    def __init__(self, state_dim: int, action_dim: int, seed: int = 0, *,
                 state_spec: Sequence[str] | None = None, device: str | torch.device = "cpu",
                 **options: Any) -> None:
        self.options = OnlineOptions(**options)
        self.state_dim, self.action_dim, self.seed = state_dim, action_dim, seed
        self.spec = StateSpec(state_spec or ["delta"] * state_dim)
        self.device = torch.device(device)
        in_dim = self.spec.feature_dim + action_dim
        o = self.options
        gen = torch.Generator().manual_seed(seed)
        self.projection = (torch.randn(o.projections, in_dim, generator=gen, dtype=torch.float64)
                           / in_dim ** 0.5)
        self.centres = torch.linspace(-o.span, o.span, o.bins, dtype=torch.float64)
        self.width = float(self.centres[1] - self.centres[0])
        self.dim = o.projections * o.bins + 1
        self.x_mean: torch.Tensor | None = None  # frozen at the first data
        self.x_std: torch.Tensor | None = None
        self.a = torch.zeros(self.dim, self.dim, dtype=torch.float64)
        self.b = torch.zeros(self.dim, self.state_dim, dtype=torch.float64)
        self.count = 0
        self.weights = torch.zeros(self.dim, self.state_dim, dtype=torch.float64)
        self.num_tasks = 0
        self.current_task: int | None = None
        self._predictor: OnlinePredictor | None = None

    # --- tasks: counted, never used -----------------------------------------------------------
    def begin_task(self) -> int:
        self.current_task = self.num_tasks
        self.num_tasks += 1
        return self.current_task

    def end_task(self, states: Any = None, actions: Any = None, next_states: Any = None) -> None:
        """The task's transitions, if given, are not used: each was learned as it came."""
        self.current_task = None

    # --- learning -----------------------------------------------------------------------------
    def features(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """phi ``[N, D]`` (float64) of states ``[N, S]`` and actions ``[N, A]``."""
        x = torch.cat([self.spec.features(states.double()), actions.double()], 1)
        z = ((x - self.x_mean) / self.x_std) @ self.projection.T  # [N, K]
        code = (1 - (z[..., None] - self.centres).abs() / self.width).clamp_min(0)  # [N, K, B]
        return torch.cat([code.flatten(1), torch.ones(len(x), 1, dtype=x.dtype)], 1)

    @torch.no_grad()
    def add(self, states: Any, actions: Any, next_states: Any) -> None:
        """Absorb transitions ``[N, S]``, ``[N, A]``, ``[N, S]`` into the statistics."""
        s, a, s2 = (torch.as_tensor(np.asarray(v), dtype=torch.float64)
                    for v in (states, actions, next_states))
        if self.x_mean is None:  # the features are fixed by the first data seen
            x = torch.cat([self.spec.features(s), a], 1)
            self.x_mean = x.mean(0)
            std = x.std(0) if len(x) > 1 else torch.ones_like(self.x_mean)
            self.x_std = torch.where(std < 1e-6, torch.ones_like(std), std)
        phi = self.features(s, a)
        self.a += phi.T @ phi
        self.b += phi.T @ self.spec.targets(s, s2)
        self.count += len(s)

    @torch.no_grad()
    def solve(self) -> dict[str, float]:
        """Refit the weights to every transition absorbed so far (Follow-The-Leader)."""
        eye = torch.eye(self.dim, dtype=torch.float64)
        self.weights = torch.linalg.solve(self.a + self.options.ridge * eye, self.b)
        self._predictor = None
        return {"transitions": float(self.count)}

    # --- prediction ---------------------------------------------------------------------------
    def predictor(self, task: int = 0, device: str | torch.device | None = None
                  ) -> OnlinePredictor:
        """The one model (``task`` is not used), in float32 for planning."""
        if self.x_mean is None:
            raise ValueError("the online model has seen no data yet: nothing to predict with")
        if self._predictor is None:
            self._predictor = OnlinePredictor(self)
        return self._predictor

    def predict(self, states: Any, actions: Any, task: int = 0) -> np.ndarray:
        s = torch.as_tensor(np.asarray(states), dtype=torch.float32)
        a = torch.as_tensor(np.asarray(actions), dtype=torch.float32)
        return self.predictor(task)(s, a).numpy()

    def mse(self, states: Any, actions: Any, next_states: Any, task: int = 0) -> float:
        pred = self.predict(states, actions, task)
        return float(((pred - np.asarray(next_states)) ** 2).mean())

    # --- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": FORMAT_VERSION,
                "config": {"state_dim": self.state_dim, "action_dim": self.action_dim,
                           "seed": self.seed, "state_spec": list(self.spec.kinds),
                           "options": dataclasses.asdict(self.options)},
                "x_mean": self.x_mean, "x_std": self.x_std, "a": self.a, "b": self.b,
                "count": self.count, "weights": self.weights, "num_tasks": self.num_tasks,
                "current_task": self.current_task}

    def save(self, path: str | os.PathLike) -> None:
        atomic_save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None):
        state = load_checked(path, FORMAT, FORMAT_VERSION, "saved online (oa) model")
        return cls.load_from_state(state, device)

    @classmethod
    def load_from_state(cls, state: dict[str, Any], device: str | torch.device | None = None):
        c = state["config"]
        model = cls(c["state_dim"], c["action_dim"], c["seed"], state_spec=c["state_spec"],
                    device=device or "cpu", **c["options"])
        for key in ("x_mean", "x_std", "a", "b", "count", "weights", "num_tasks",
                    "current_task"):
            setattr(model, key, state[key])
        return model


class OnlinePredictor:
    """next_state = f(state, action) of an :class:`OnlineDynamics`, for the planner."""

    def __init__(self, model: OnlineDynamics) -> None:
        f32 = torch.float32
        self.spec, self.state_dim = model.spec, model.state_dim
        self.device, self.dtype = torch.device("cpu"), f32
        # standardisation and projection folded into one affine map
        self.proj_t = (model.projection / model.x_std).T.to(f32).contiguous()  # [in, K]
        self.shift = (model.projection @ (model.x_mean / model.x_std)).to(f32)  # [K]
        self.centres = model.centres.to(f32)
        self.width = model.width
        self.w_code = model.weights[:-1].to(f32).contiguous()  # [K * B, S]
        self.w_bias = model.weights[-1].to(f32)

    @torch.no_grad()
    def __call__(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.spec.features(state), action], 1)
        z = x @ self.proj_t - self.shift  # [N, K]
        code = (1 - (z[..., None] - self.centres).abs() / self.width).clamp_min_(0)
        return self.spec.apply(state, torch.addmm(self.w_bias, code.flatten(1), self.w_code))
