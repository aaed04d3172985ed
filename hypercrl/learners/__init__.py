"""Learners: what the continual loop drives. Each implements :class:`Learner`.

- :class:`ModelBasedLearner`: every method of ``hypercrl.cl`` (HyperCRL and the baselines),
  a continual dynamics model with an MPC agent;
- :class:`OnlineLearner`: ``oa``, MPC through an online world model that cannot forget (OA);
- :class:`SACLearner`: ``sb3-sac``, stable-baselines3's SAC, the model-free reference.
"""

from __future__ import annotations

from hypercrl.learners.base import BatchPolicy, Learner, Policy, Transition
from hypercrl.learners.model_based import ModelBasedLearner
from hypercrl.learners.online import OnlineLearner
from hypercrl.learners.sac import SACLearner, SACOptions

LEARNERS: tuple[type[Learner], ...] = (ModelBasedLearner, OnlineLearner, SACLearner)
DEFAULT_METHOD = "hnet"  # what `hypercrl run` trains unless told otherwise
DEFAULT_COMPARISON = ("hnet", "finetune", "coreset")  # what launch scripts compare by default


def all_methods() -> list[str]:
    """Every method a run can use."""
    return [m for cls in LEARNERS for m in cls.methods()]


def learner_class(method: str) -> type[Learner]:
    """The learner implementing ``method``; ValueError lists the known methods."""
    for cls in LEARNERS:
        if method in cls.methods():
            return cls
    raise ValueError(f"unknown method {method!r}; known methods: {all_methods()}")


__all__ = [
    "BatchPolicy",
    "DEFAULT_COMPARISON",
    "DEFAULT_METHOD",
    "LEARNERS",
    "Learner",
    "ModelBasedLearner",
    "OnlineLearner",
    "Policy",
    "SACLearner",
    "SACOptions",
    "Transition",
    "all_methods",
    "learner_class",
]
