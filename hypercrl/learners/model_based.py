"""The model-based learner: a continual dynamics model, an MPC agent, and transition buffers.

Per task (reference §1.1): ``init_random_steps`` steps with N(0, I) actions (clipped to the
action box); then MPC through the current task's model, retrained every ``retrain_every`` MPC
steps (from the first one on) for ``train_iters`` gradient steps on the task's buffer. It plans
only with the current task's model: until that model is first fitted (e.g. with
``init_random_steps=0``, before the buffer holds two transitions) it keeps acting randomly,
and says so once. Held-out transitions go to a per-task buffer used only for the model-error
matrices.

Task identity (``cfg.task_boundaries``): "given" (the original), the loop calls
``begin_task``/``end_task`` at every task change. "inferred": the loop begins the first task
only; the learner checks its recent transitions against every seen task
(:class:`~hypercrl.learners.taskfree.TaskDetector`) and ends its task and begins a new one
when none explains them, then starts the schedule above afresh (random steps first). With
``cfg.task_free_eval`` (always with "inferred") evaluation episodes infer the task as they go
(:class:`~hypercrl.learners.taskfree.TaskFreeBatchPolicy`) and plan with the inferred task's
model and reward.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hypercrl.api import ContinualDynamics
from hypercrl.cl import METHODS, strategy_class
from hypercrl.data import TransitionBuffer
from hypercrl.learners.base import BatchPolicy, Learner, Policy, Transition
from hypercrl.learners.taskfree import TaskDetector, TaskFreeBatchPolicy, evidence, task_agents
from hypercrl.plan import (
    PLANNERS,
    BoxOptimizer,
    MPCAgent,
    as_rollout,
    make_optimizer,
    plan_across,
)
from hypercrl.plan.lockstep import reset_seeded
from hypercrl.seeds import seed_of

log = logging.getLogger("hypercrl")


class ModelBasedLearner(Learner):
    """ContinualDynamics (any method of ``hypercrl.cl``) + an MPC agent + buffers."""

    uses_planner = True
    infers_tasks = True
    saved_suffix = ".pt"
    dynamics_class: Any = ContinualDynamics  # what ``load_state_dict`` and ``load`` rebuild

    @classmethod
    def methods(cls) -> list[str]:
        return sorted(METHODS)

    @classmethod
    def options_class(cls, method: str) -> type:
        return strategy_class(method).Options

    def __init__(self, cfg: Any, seq: Any, progress: bool = False) -> None:
        self.cfg = cfg
        self.progress = progress
        self.rewards = [t.reward for t in seq.tasks]
        self.s_dim, self.a_dim = seq.observation_dim, seq.action_dim
        self.low = np.asarray(seq.action_low, np.float32)
        self.high = np.asarray(seq.action_high, np.float32)
        self.state_kinds = tuple(seq.state_kinds)
        self.rng = np.random.default_rng(seed_of(cfg.seed, 1))
        self.dynamics = self._new_dynamics()
        self.planner = PLANNERS[cfg.planner](**cfg.planner_options)
        optimizer = self._new_optimizer(
            torch.Generator(device=cfg.device).manual_seed(seed_of(cfg.seed, 3))
        )
        self.agent = MPCAgent(self.dynamics, self.rewards[0], optimizer, compile=cfg.compile)
        # evaluation plans with its own agent per task and one optimiser per episode
        # (batch_policy_tasks), so that it leaves the training planner's state alone
        self._eval_agents: dict[int, MPCAgent] = {}
        self._eval_optimizers: list[BoxOptimizer] = []
        self.task: int | None = None
        self.step = 0  # env steps observed in the current task
        self.fitted = False  # the current task's model has been trained
        self.buffer: TransitionBuffer | None = None
        self.heldout: dict[int, TransitionBuffer] = {}
        self._plan_ms: list[float] = []
        # work done by this process (for ``bench loop``): MPC plan steps while collecting,
        # gradient steps of the dynamics model
        self.counts = {"plan_steps": 0, "gradient_steps": 0}
        self.inferred = cfg.task_boundaries == "inferred"
        if self.inferred and any(r is not self.rewards[0] for r in self.rewards):
            raise ValueError("task_boundaries='inferred': the tasks of this sequence have "
                             "different rewards, and a learner not told the task cannot "
                             "choose among them")
        self.detector = TaskDetector(cfg.infer_window, cfg.detect_quantile, cfg.detect_margin)
        self.recent = TransitionBuffer(self.s_dim, self.a_dim, cfg.infer_window)
        self._since_check = 0  # steps since the last detection check
        self._strikes = 0  # unexplained checks in a row

    def _new_optimizer(self, generator: torch.Generator) -> BoxOptimizer:
        cfg = self.cfg
        return make_optimizer(self.planner, self.low, self.high, cfg.horizon,
                              device=cfg.device, generator=generator)

    def _new_dynamics(self) -> ContinualDynamics:
        cfg = self.cfg
        return ContinualDynamics(
            self.s_dim, self.a_dim, cfg.method, seed=cfg.seed, hidden=cfg.hidden,
            probabilistic=cfg.probabilistic, normalize_targets=cfg.normalize_targets,
            clip_states=cfg.clip_states, absolute_inputs=cfg.absolute_inputs,
            state_spec=self.state_kinds,
            batch_size=cfg.batch_size, device=cfg.device,
            **cfg.method_options,
        )

    # --- training -----------------------------------------------------------------------------
    @property
    def active_task(self) -> int | None:
        """The task being learned (with inferred boundaries, the learner's own numbering)."""
        return self.task

    def begin_task(self, task: int) -> None:
        cfg = self.cfg
        self.task = self.dynamics.begin_task()
        if self.task != task:
            raise ValueError(f"begin_task({task}) but the model expects task {self.task}")
        self.step, self.fitted = 0, False
        capacity = cfg.buffer_size or max(1, cfg.init_random_steps + cfg.mpc_steps)
        self.buffer = TransitionBuffer(self.s_dim, self.a_dim, capacity)
        self.heldout[task] = TransitionBuffer(self.s_dim, self.a_dim, cfg.heldout_size)
        self.recent = TransitionBuffer(self.s_dim, self.a_dim, cfg.infer_window)
        self._since_check = self._strikes = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.step < self.cfg.init_random_steps or not self.fitted:
            if self.step == self.cfg.init_random_steps and not self.fitted:
                log.warning("task %d: no model of this task is fitted yet (the buffer holds %d "
                            "training transitions); acting randomly until the next retrain",
                            self.task, len(self.buffer))
            action = np.clip(self.rng.standard_normal(self.a_dim), self.low, self.high)
            return action.astype(np.float32)
        if self.agent.task != self.task:  # an evaluation planned for another task meanwhile
            self._plan_for(self.task)
        start = time.perf_counter()
        action = self.agent.act(obs).cpu().numpy().astype(np.float32)
        self._plan_ms.append(1000 * (time.perf_counter() - start))
        self.counts["plan_steps"] += 1
        return action

    def observe(self, transition: Transition) -> dict[str, float]:
        tr = transition
        target = self.heldout[self.task] if tr.heldout else self.buffer
        target.add(tr.obs, tr.action, tr.next_obs)
        self.step += 1
        cfg = self.cfg
        out: dict[str, float] = {}
        if self.inferred and evidence(tr.obs, tr.next_obs, cfg.infer_dims, cfg.infer_change)[0]:
            self.recent.add(tr.obs, tr.action, tr.next_obs)
            self._since_check += 1
            ratio = self._check()
            if ratio is not None:
                # the best-explaining task's score over its threshold (> 1: unexplained)
                out["task_free/score_ratio"] = ratio
                if self._strikes >= cfg.detect_patience:
                    return out | self._new_task()
        mpc_step = self.step - cfg.init_random_steps  # index of the next MPC step
        due = mpc_step >= 0 and mpc_step % cfg.retrain_every == 0
        # the last retrain point is the last MPC step; a task without MPC steps trains once.
        # Inferred boundaries: the learner does not know its task's budget is spent (the task
        # may go on), so it keeps retraining
        if due and (mpc_step < cfg.mpc_steps or mpc_step == 0 or self.inferred):
            return out | self._retrain()
        return out

    def _retrain(self) -> dict[str, float]:
        s, a, s2 = self.buffer.arrays()
        if len(s) < 2:
            return {}
        stats = self.dynamics.fit(s, a, s2, steps=self.cfg.train_iters, progress=self.progress)
        self.counts["gradient_steps"] += self.cfg.train_iters
        self.fitted = True
        self._plan_for(self.task)  # fetch the new weights once for this training round
        if self.inferred:
            s, a, s2 = self.heldout[self.task].arrays()
            keep = evidence(s, s2, self.cfg.infer_dims, self.cfg.infer_change)
            self.detector.calibrate(self.dynamics, self.task, s[keep], a[keep], s2[keep])
        return stats

    # --- new-task detection (task_boundaries="inferred") ----------------------------------------
    def _check(self) -> float | None:
        """Every ``infer_every`` steps, once this task is calibrated and W transitions are in:
        the best seen task's score of the last W over its threshold (None: no check due). A
        ratio above 1 (no seen task explains them) is a strike; ``detect_patience`` strikes in
        a row start a new task."""
        cfg = self.cfg
        if (self._since_check < cfg.infer_every or len(self.recent) < cfg.infer_window
                or not self.detector.calibrated(self.task)):
            return None
        self._since_check = 0
        ratio = min(self.detector.ratios(self.dynamics, *self.recent.arrays()).values())
        self._strikes = self._strikes + 1 if ratio > 1.0 else 0
        return ratio

    def _new_task(self) -> dict[str, float]:
        """End the current task and begin the next one, its buffer holding the W transitions
        that no seen task explained."""
        s, a, s2 = self.recent.arrays()
        old = self.task
        self._end_dynamics_task()
        self.begin_task(old + 1)
        for row in zip(s, a, s2, strict=True):
            self.buffer.add(*row)
        self.agent.reset()
        log.info("task %d: no seen task explains the last %d transitions; starting task %d",
                 old, len(s), self.task)
        return {"task_free/new_task": float(self.task)}

    def end_episode(self) -> dict[str, float]:
        out = {"plan/ms_per_step": float(np.mean(self._plan_ms))} if self._plan_ms else {}
        self._plan_ms = []
        self.agent.reset()
        return out

    def _end_dynamics_task(self) -> None:
        """End the model's task: its method consolidates on all of the task's training
        data, as the original's does (reference §6.2), the transitions since the last
        retrain included."""
        self.dynamics.end_task(*(self.buffer.arrays() if len(self.buffer) else ()))

    def end_task(self) -> dict[str, list[float]]:
        self._end_dynamics_task()
        task, self.task, self.buffer = self.task, None, None
        return self.model_errors(task)

    # --- evaluation ---------------------------------------------------------------------------
    def _reward(self, task: int) -> Any:
        """The reward to plan for ``task`` with: with inferred boundaries the learner's tasks
        are its own, and every task of the sequence has the same reward (checked)."""
        return self.rewards[0 if self.inferred else task]

    def _plan_for(self, task: int) -> None:
        self.agent.reward = self._reward(task)
        self.agent.set_task(task)

    def policy(self, task: int) -> Policy:
        self._plan_for(task)
        return _MPCPolicy(self.agent)

    def batch_policy_tasks(self, tasks: Sequence[int], episodes: int) -> BatchPolicy:
        """Plans for ``episodes`` episodes of each of ``tasks`` together, each with its task's
        model and reward (:func:`~hypercrl.plan.plan_across`); with ``task_free_eval`` (or
        inferred boundaries) the tasks are not used: each episode infers its task, starting
        from the newest task whose model has been fitted."""
        n = len(tasks) * episodes
        while len(self._eval_optimizers) < max(n, 1):  # an agent needs one
            self._eval_optimizers.append(
                self._new_optimizer(torch.Generator(device=self.cfg.device)))
        cfg = self.cfg
        if cfg.task_free_eval or self.inferred:
            agents = task_agents(self.dynamics, self._reward, self._eval_optimizers[0],
                                 compile=cfg.compile)
            start = self.dynamics.num_tasks - 1
            if start > 0 and self.task == start and not self.fitted:
                start -= 1  # the newest task has no fitted model yet: begin with the one before
            return TaskFreeBatchPolicy(self.dynamics, agents, self._eval_optimizers[:n],
                                       cfg.infer_window, cfg.infer_every,
                                       start_task=start,
                                       evidence=cfg.infer_dims, change=cfg.infer_change)
        for task in tasks:
            agent = self._eval_agents.get(task)
            if agent is None:
                agent = self._eval_agents[task] = MPCAgent(
                    self.dynamics, self.rewards[task], self._eval_optimizers[0],
                    compile=cfg.compile)
            agent.set_task(task)  # the task's current weights
        agents = [self._eval_agents[task] for task in tasks for _ in range(episodes)]
        return _MPCBatchPolicy(agents, self._eval_optimizers[:n])

    def model_errors(self, upto: int) -> dict[str, list[float]]:
        """One-step and H-step held-out MSE of every task 0..upto under the current model."""
        one, hstep = [], []
        for j in range(upto + 1):
            buf = self.heldout.get(j)
            s, a, s2 = buf.arrays() if buf is not None else ((),) * 3
            if len(s) == 0:
                one.append(float("nan"))
                hstep.append(float("nan"))
                continue
            one.append(self.dynamics.mse(s, a, s2, task=j))
            hstep.append(self._h_step_error(j, s, a, s2))
        return {"model_error_1": one, "model_error_h": hstep}

    def _h_step_error(self, task: int, s, a, s2) -> float:
        """MSE after rolling the model H steps open-loop along held-out segments."""
        seg = self.h_step_segment_errors(task, s, a, s2)
        return float(seg.mean()) if len(seg) else float("nan")

    def h_step_segment_errors(self, task: int, s, a, s2) -> np.ndarray:
        """Per-segment MSE after rolling task ``task``'s model H steps open-loop.

        The segments are every H-th window of H consecutive rows (rows k, k+1 are consecutive
        where ``s2[k] == s[k + 1]``); one error per segment, averaged over the state dims
        of its last step. Empty when no segment fits.
        """
        h = self.cfg.horizon
        starts = [k for k in range(0, len(s) - h + 1)
                  if np.array_equal(s2[k : k + h - 1], s[k + 1 : k + h])][::h]
        if not starts:
            return np.zeros(0)
        idx = np.asarray(starts)[:, None] + np.arange(h)[None]
        pred = as_rollout(self.dynamics.predictor(task))
        dev = self.dynamics.device
        with torch.no_grad():
            roll = pred.rollout(torch.as_tensor(s[idx[:, 0]], device=dev),
                                torch.as_tensor(a[idx], device=dev))
        if roll.shape[0] != len(idx):  # an ensemble's particles, member-major: their mean
            roll = roll.unflatten(0, (-1, len(idx))).mean(0)
        truth = torch.as_tensor(s2[idx[:, -1]], device=dev)
        return (roll[:, -1] - truth).pow(2).mean(1).double().cpu().numpy()

    # --- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "dynamics": self.dynamics.state_dict(),
            "task": self.task,
            "step": self.step,
            "fitted": self.fitted,
            "buffer": self.buffer.state_dict() if self.buffer is not None else None,
            "heldout": {j: b.state_dict() for j, b in self.heldout.items()},
            "rng": self.rng.bit_generator.state,
            "planner_gen": self.agent.optimizer.generator.get_state(),
            "detector": self.detector.state_dict(),
            "recent": self.recent.state_dict(),
            "detection_counts": (self._since_check, self._strikes),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._set_dynamics(self.dynamics_class.load_from_state(state["dynamics"],
                                                               device=self.cfg.device))
        self.task, self.step, self.fitted = state["task"], state["step"], state["fitted"]
        self.buffer = (TransitionBuffer.from_state_dict(state["buffer"])
                       if state["buffer"] is not None else None)
        self.heldout = {int(j): TransitionBuffer.from_state_dict(b)
                        for j, b in state["heldout"].items()}
        self.rng.bit_generator.state = state["rng"]
        if self.task is not None and self.fitted:
            self._plan_for(self.task)
        self.agent.optimizer.generator.set_state(state["planner_gen"])
        if "detector" in state:  # saved by every version since task inference
            self.detector.load_state_dict(state["detector"])
            self.recent = TransitionBuffer.from_state_dict(state["recent"])
            self._since_check, self._strikes = state["detection_counts"]

    def save(self, path: str) -> None:
        self.dynamics.save(path)

    def load(self, path: str) -> None:
        self._set_dynamics(self.dynamics_class.load(path, device=self.cfg.device))

    def _set_dynamics(self, dynamics: ContinualDynamics) -> None:
        self.dynamics = dynamics
        self.agent = MPCAgent(dynamics, self.rewards[0], self.agent.optimizer,
                              compile=self.cfg.compile)
        self._eval_agents = {}  # made again around the new dynamics when next evaluating


class _MPCPolicy:
    """Plans with the agent, drawing the planner's noise from its own generator, seeded per
    episode by ``reset(seed)``: evaluating neither depends on nor advances the training
    stream."""

    def __init__(self, agent: MPCAgent) -> None:
        self.agent = agent
        self.generator = torch.Generator(device=agent.device)

    def reset(self, seed: int | None = None) -> None:
        self.agent.reset()
        if seed is not None:
            self.generator.manual_seed(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        optimizer = self.agent.optimizer
        training, optimizer.generator = optimizer.generator, self.generator
        try:
            return self.agent.act(obs).cpu().numpy().astype(np.float32)
        finally:
            optimizer.generator = training


class _MPCBatchPolicy:
    """Plans for several episodes together (:func:`~hypercrl.plan.plan_across`), episode
    ``e`` with ``agents[e]`` (its task's) and its own optimiser, whose generator
    ``reset(seeds)`` seeds with ``seeds[e]``: each episode draws the noise and takes the
    actions :class:`_MPCPolicy` reset with that seed would."""

    def __init__(self, agents: list[MPCAgent], optimizers: list[BoxOptimizer]) -> None:
        self.agents = agents
        self.optimizers = optimizers

    def reset(self, seeds: Sequence[int]) -> None:
        reset_seeded(self.optimizers, seeds)

    def __call__(self, obs: np.ndarray, episodes: Sequence[int]) -> np.ndarray:
        plans = plan_across([self.agents[e] for e in episodes], obs,
                            [self.optimizers[e] for e in episodes])
        return plans[:, 0].cpu().numpy().astype(np.float32)
