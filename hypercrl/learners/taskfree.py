"""Acting and learning without being told the task: windowed inference, new-task detection.

Two uses, both of the model-based learner (``hypercrl.learners.model_based``):

* **Task-free planning** (:class:`TaskFreeBatchPolicy`): each episode keeps its last W
  transitions and asks ``ContinualDynamics.infer_task`` which seen task explains them best,
  after every step until it holds W, then every k steps; it plans with that task's model and
  that task's reward. An episode's first step, before any transition, plans with the most
  recently learned task.
* **New-task detection** (:class:`TaskDetector`): a learner that is not told when the task
  changes (``task_boundaries="inferred"``) checks, every k steps, whether any seen task
  explains its last W transitions, and starts a new task when none does ``patience`` checks
  in a row. Each task's model is calibrated on that task's held-out transitions (never
  trained on), at every retrain while the task is learned:

  - ``scale_k`` ``[S]``: the model's mean squared error per state dimension on them;
  - the score of a window under task k: the mean over its transitions and dimensions of the
    squared error divided by ``scale_k`` (about 1 for data of task k, whatever the units);
  - ``threshold_k``: the ``quantile`` of the scores of every window of W consecutive held-out
    transitions, times ``margin``.

  A window is explained by task k when its score is at most ``threshold_k``.

With ``infer_dims`` both look only at the transitions that move those state dims
(:func:`evidence`): windows, counts of steps and the calibration's held-out transitions alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from hypercrl.data import TransitionBuffer
from hypercrl.plan import BoxOptimizer, MPCAgent, plan_across
from hypercrl.plan.lockstep import reset_seeded


def evidence(states: np.ndarray, next_states: np.ndarray, dims: Sequence[int],
             change: float) -> np.ndarray:
    """[N] bool: the transitions in which one of state ``dims`` changes by at least
    ``change`` (all of them without ``dims``): those that tell tasks apart where the tasks
    differ only in how an object responds (``infer_dims``)."""
    states, next_states = np.atleast_2d(states), np.atleast_2d(next_states)
    if not len(dims) or not states.size:
        return np.ones(len(states), bool)
    dims = list(dims)
    return np.abs(next_states[:, dims] - states[:, dims]).max(axis=1) >= change


class TaskDetector:
    """Per-task error scales and thresholds, and the scores of a window under every task.

    Args:
        window: W, transitions per window (the calibration windows have the same length).
        quantile: which quantile of the held-out window scores the threshold starts from.
        margin: the threshold is that quantile times ``margin``.
    """

    def __init__(self, window: int, quantile: float, margin: float) -> None:
        self.window, self.quantile, self.margin = window, quantile, margin
        self.scales: dict[int, np.ndarray] = {}  # task -> [S]
        self.thresholds: dict[int, float] = {}

    def calibrated(self, task: int) -> bool:
        return task in self.thresholds

    def calibrate(self, dynamics: Any, task: int, states: np.ndarray, actions: np.ndarray,
                  next_states: np.ndarray) -> bool:
        """Set ``task``'s scale and threshold from its held-out transitions (in the order
        they were seen); False, leaving them as they were, when there are fewer than W."""
        w = self.window
        if len(states) < w:
            return False
        sq = dynamics.prediction_errors(states, actions, next_states, [task])[0].double()
        scale = sq.mean(0).clamp_min(1e-12)  # [S]
        per = (sq / scale).mean(1)  # [N]
        sums = torch.cumsum(torch.cat([per.new_zeros(1), per]), 0)
        windows = (sums[w:] - sums[:-w]) / w  # every window of W consecutive transitions
        self.scales[task] = scale.cpu().numpy()
        self.thresholds[task] = float(torch.quantile(windows, self.quantile)) * self.margin
        return True

    def ratios(self, dynamics: Any, states: np.ndarray, actions: np.ndarray,
               next_states: np.ndarray) -> dict[int, float]:
        """Each calibrated task's window score over its threshold (explained: <= 1)."""
        tasks = sorted(self.thresholds)
        if not tasks:
            return {}
        sq = dynamics.prediction_errors(states, actions, next_states, tasks).double()
        scale = torch.as_tensor(np.stack([self.scales[t] for t in tasks]), device=sq.device)
        scores = (sq / scale[:, None, :]).mean(dim=(1, 2))
        return {t: float(s) / self.thresholds[t] for t, s in zip(tasks, scores.tolist(),
                                                                  strict=True)}

    def state_dict(self) -> dict[str, Any]:
        return {"scales": dict(self.scales), "thresholds": dict(self.thresholds)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scales = {int(k): np.asarray(v) for k, v in state["scales"].items()}
        self.thresholds = {int(k): float(v) for k, v in state["thresholds"].items()}


class TaskFreeBatchPolicy:
    """Evaluation episodes planned without the task id (a ``BatchPolicy``).

    Episode ``e`` plans with its own optimiser (seeded by ``reset``), as the given-task batch
    policy does, with the model and the reward of the task it last inferred from its last
    ``window`` transitions (``ContinualDynamics.infer_task``): after each of its first
    ``window`` steps, then every ``every`` steps. Its first step plans with ``start_task``.
    ``usage`` counts, per seen task, the steps planned with it (``usage_of``: those of some
    episodes). All episodes plan together (:func:`~hypercrl.plan.plan_across`), each with
    its inferred task's agent, whatever the tasks they run in.

    With ``evidence`` dims, only the transitions in which one of them changes by at least
    ``change`` count (enter the window and advance the step count): where the tasks differ
    only in an object's response, the steps that do not move it say nothing of the task. An
    episode plans with ``start_task`` until its first such transition.

    Args:
        dynamics: the ``ContinualDynamics`` (``infer_task``, ``num_tasks``).
        agents: one MPC agent per seen task, its task and reward set.
        optimizers: one per episode.
    """

    def __init__(self, dynamics: Any, agents: Sequence[MPCAgent],
                 optimizers: Sequence[BoxOptimizer], window: int, every: int,
                 start_task: int, evidence: Sequence[int] = (), change: float = 2e-3) -> None:
        self.dynamics, self.agents, self.optimizers = dynamics, list(agents), list(optimizers)
        self.window, self.every, self.start_task = window, every, start_task
        self.evidence, self.change = list(evidence), change
        self._usage: list[list[int]] = []  # per episode, per seen task

    def reset(self, seeds: Sequence[int]) -> None:
        reset_seeded(self.optimizers, seeds)
        dyn = self.dynamics
        self._task = [self.start_task] * len(seeds)
        self._recent = [TransitionBuffer(dyn.state_dim, dyn.action_dim, self.window)
                        for _ in seeds]
        self._last: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(seeds)
        self._steps = [0] * len(seeds)
        self._usage = [[0] * len(self.agents) for _ in seeds]

    def __call__(self, obs: np.ndarray, episodes: Sequence[int]) -> np.ndarray:
        for i, e in enumerate(episodes):
            if self._last[e] is not None and self._tells(self._last[e][0], obs[i]):
                self._recent[e].add(*self._last[e], obs[i])
                self._steps[e] += 1
                # after every step until W transitions are in, then every k steps
                if self._steps[e] <= self.window or self._steps[e] % self.every == 0:
                    task = self.dynamics.infer_task(*self._recent[e].arrays()).task
                    if task != self._task[e]:
                        self.optimizers[e].reset()  # a warm start from another task's plan
                        self._task[e] = task
        plans = plan_across([self.agents[self._task[e]] for e in episodes], obs,
                            [self.optimizers[e] for e in episodes])
        actions = plans[:, 0].cpu().numpy().astype(np.float32)
        for i, e in enumerate(episodes):
            self._usage[e][self._task[e]] += 1
            self._last[e] = (obs[i], actions[i])
        return actions

    @property
    def usage(self) -> list[int]:
        """Per seen task, the steps planned with it, over all episodes."""
        return self.usage_of(range(len(self._usage)))

    def usage_of(self, episodes: Sequence[int]) -> list[int]:
        """Per seen task, the steps the listed episodes planned with it."""
        return [sum(self._usage[e][t] for e in episodes) for t in range(len(self.agents))]

    def _tells(self, obs: np.ndarray, next_obs: np.ndarray) -> bool:
        """Whether a transition is evidence of the task (every one without ``evidence``)."""
        return bool(evidence(obs, next_obs, self.evidence, self.change)[0])


def task_agents(dynamics: Any, reward_of: Callable[[int], Any], optimizer: BoxOptimizer,
                compile: bool = False) -> list[MPCAgent]:
    """One MPC agent per seen task, each with its task's current weights and reward. They
    share ``optimizer`` only for its bounds, horizon and device (``plan_many`` plans with the
    optimisers it is given)."""
    agents = []
    for task in range(dynamics.num_tasks):
        agent = MPCAgent(dynamics, reward_of(task), optimizer, compile=compile)
        agent.set_task(task)
        agents.append(agent)
    return agents
