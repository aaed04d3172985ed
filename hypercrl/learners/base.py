"""The Learner interface the continual loop is written against.

A learner turns observations into actions and transitions into learning, one task after
another; it can act for any task it has seen (evaluation), one episode at a time or, when it
can, in several episodes together (:class:`BatchPolicy`), and it saves and restores itself
completely (checkpoints), or just its learned part (``save``/``load``, one file per task end,
for ``hypercrl eval`` and ``hypercrl video``). The loop never asks which method a learner runs.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import numpy as np


class Policy(Protocol):
    """Acts in one task: ``reset(seed)`` at every episode start, then ``policy(obs) -> action``.

    ``seed`` seeds every random stream the policy draws from in that episode (its planner's
    sampling noise), so an evaluation episode depends only on the model and the seed."""

    def reset(self, seed: int | None = None) -> None: ...

    def __call__(self, obs: np.ndarray) -> np.ndarray: ...


class BatchPolicy(Protocol):
    """Acts in several episodes together (of one task or of several), each exactly as its
    task's :class:`Policy` reset with that episode's seed would: ``reset(seeds)`` starts one
    episode per seed, then ``policy(obs, episodes)`` maps the observations ``[n, S]`` of the
    listed episodes (indices into ``seeds``; the ones still running) to their actions
    ``[n, A]``."""

    def reset(self, seeds: Sequence[int]) -> None: ...

    def __call__(self, obs: np.ndarray, episodes: Sequence[int]) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class Transition:
    """One env step: observation [S], action [A], reward, next observation [S], and whether
    the step ended the episode. ``heldout``: kept out of training (model-error data only)."""

    obs: np.ndarray
    action: np.ndarray
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool
    heldout: bool = False


class Learner(ABC):
    """A continual learner over the tasks of one task sequence.

    Lifecycle per task t: ``begin_task(t)``; for every env step ``act(obs)`` then
    ``observe(transition)``; ``end_episode()`` after each episode; ``end_task()``.
    ``policy(j)`` acts for any begun task j at any time.

    Args (of every implementation):
        cfg: the resolved :class:`~hypercrl.config.RunConfig`.
        seq: the task sequence (dimensions, action bounds, state kinds, each task's reward).
        progress: show progress bars for long inner work (model training).
    """

    uses_planner: ClassVar[bool] = False
    # can act without the task id and detect new tasks (``task_boundaries="inferred"``,
    # ``task_free_eval``); such a learner has ``active_task`` (the task it is learning)
    infers_tasks: ClassVar[bool] = False
    saved_suffix: ClassVar[str] = ".pt"  # of the files ``save`` writes

    @classmethod
    @abstractmethod
    def methods(cls) -> list[str]:
        """The method names this learner implements."""

    @classmethod
    @abstractmethod
    def options_class(cls, method: str) -> type:
        """The Options dataclass of ``method`` (the home of its options and defaults)."""

    @abstractmethod
    def begin_task(self, task: int) -> None: ...

    @abstractmethod
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Training-time action [A] (float32) in the current task."""

    @abstractmethod
    def observe(self, transition: Transition) -> dict[str, float]:
        """Learn from one step; returns scalars to log (empty when there is nothing new)."""

    def end_episode(self) -> dict[str, float]:
        """Called after every training episode (planners forget their warm start); returns
        per-episode scalars to log and record (e.g. planning time), or {}."""
        return {}

    @abstractmethod
    def end_task(self) -> dict[str, list[float]]:
        """Finish the current task; returns per-seen-task diagnostics to record as rows of
        matrices (e.g. ``{"model_error_1": [e_0, ..., e_t]}``), or {}."""

    @abstractmethod
    def policy(self, task: int) -> Policy:
        """A policy for seen task ``task`` (evaluation; no learning)."""

    def batch_policy(self, task: int, episodes: int) -> BatchPolicy | None:
        """A policy for ``episodes`` episodes of seen task ``task`` stepped together, or None
        when this learner acts in one episode at a time (then the loop evaluates episode
        after episode with :meth:`policy`): :meth:`batch_policy_tasks` of that one task."""
        return self.batch_policy_tasks([task], episodes)

    def batch_policy_tasks(self, tasks: Sequence[int], episodes: int) -> BatchPolicy | None:
        """A policy for ``episodes`` episodes of each of the seen ``tasks`` stepped together,
        episode ``e`` of ``tasks[i]`` as its episode ``i * episodes + e``; or None when this
        learner cannot (the loop then evaluates task by task). The default: a learner that
        overrides :meth:`batch_policy` only steps one task's episodes together."""
        if len(tasks) == 1 and type(self).batch_policy is not Learner.batch_policy:
            return self.batch_policy(tasks[0], episodes)
        return None

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (random streams included)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    @abstractmethod
    def save(self, path: str) -> None:
        """Write the learned part (what ``policy`` needs) to ``path``."""

    @abstractmethod
    def load(self, path: str) -> None:
        """Replace the learned part with what ``save`` wrote at ``path``."""
