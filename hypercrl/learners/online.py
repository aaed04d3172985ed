"""Method ``oa``: MPC through an online world model that cannot forget (OA, ICML 2025).

The model-based learner's loop, buffers, planner and evaluation, with
:class:`~hypercrl.model.online.OnlineDynamics` for the dynamics: one model for every task,
never told which task it is in, fitted in closed form to every training transition seen so
far. Each training transition is absorbed as it arrives; at the schedule's retrain points the
weights are solved again (no gradient steps). The planner uses the latest model for every task,
with that task's reward.
"""

from __future__ import annotations

from typing import Any

from hypercrl.learners.base import Transition
from hypercrl.learners.model_based import ModelBasedLearner
from hypercrl.model.online import OnlineDynamics, OnlineOptions


class OnlineLearner(ModelBasedLearner):
    """OA: an MPC agent planning through an online Follow-The-Leader world model."""

    infers_tasks = False  # it needs no task id, and has no per-task models to infer among
    dynamics_class = OnlineDynamics

    @classmethod
    def methods(cls) -> list[str]:
        return ["oa"]

    @classmethod
    def options_class(cls, method: str) -> type:
        return OnlineOptions

    def _new_dynamics(self) -> Any:
        cfg = self.cfg
        return OnlineDynamics(self.s_dim, self.a_dim, seed=cfg.seed,
                              state_spec=self.state_kinds, device=cfg.device,
                              **cfg.method_options)

    def observe(self, transition: Transition) -> dict[str, float]:
        if not transition.heldout:
            tr = transition
            self.dynamics.add(tr.obs[None], tr.action[None], tr.next_obs[None])
        return super().observe(transition)

    def _retrain(self) -> dict[str, float]:
        if self.dynamics.count < 2:
            return {}
        stats = self.dynamics.solve()
        self.fitted = True
        self._plan_for(self.task)
        return stats
