"""Trajectory optimisers (CEM, iCEM, MPPI) and the MPC agent that plans through a model.

An optimiser maps an objective (action sequences ``[P, H, A]`` -> returns ``[P]``) to a plan
``[H, A]`` inside an action box; :class:`MPCAgent` builds that objective from a dynamics model,
a reward and the current state.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hypercrl.plan.agent import (
    MPCAgent,
    PredictorSource,
    RewardFn,
    Rollout,
    StepFn,
    StepRollout,
    as_rollout,
    plan_across,
)
from hypercrl.plan.base import BoxOptimizer, Objective, TrajectoryOptimizer
from hypercrl.plan.cem import CEM, CEMConfig
from hypercrl.plan.icem import ICEM, ICEMConfig
from hypercrl.plan.mppi import MPPI, MPPIConfig

PlannerConfig = CEMConfig | ICEMConfig | MPPIConfig

# planner name (a run's ``planner``) -> its config dataclass, the home of its options
PLANNERS: dict[str, type] = {"cem": CEMConfig, "icem": ICEMConfig, "mppi": MPPIConfig}


def make_optimizer(
    config: PlannerConfig,
    lower: Tensor | Sequence[float],
    upper: Tensor | Sequence[float],
    horizon: int,
    *,
    device: str | torch.device = "cpu",
    generator: torch.Generator | None = None,
) -> BoxOptimizer:
    """The optimiser ``config`` describes (ICEMConfig: ICEM, CEMConfig: CEM, MPPIConfig: MPPI)."""
    kw = {"device": device, "generator": generator}
    if isinstance(config, ICEMConfig):  # before CEMConfig: an ICEMConfig is one
        return ICEM(lower, upper, horizon, config, **kw)
    if isinstance(config, CEMConfig):
        return CEM(lower, upper, horizon, config, **kw)
    if isinstance(config, MPPIConfig):
        return MPPI(lower, upper, horizon, config, **kw)
    raise ValueError(f"config={config!r} is not a CEMConfig, ICEMConfig or MPPIConfig")


__all__ = [
    "CEM",
    "ICEM",
    "MPPI",
    "BoxOptimizer",
    "CEMConfig",
    "ICEMConfig",
    "MPCAgent",
    "plan_across",
    "MPPIConfig",
    "Objective",
    "PLANNERS",
    "PlannerConfig",
    "PredictorSource",
    "RewardFn",
    "Rollout",
    "StepFn",
    "StepRollout",
    "as_rollout",
    "TrajectoryOptimizer",
    "make_optimizer",
]
