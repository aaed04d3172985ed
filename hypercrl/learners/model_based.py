"""The model-based learner: a continual dynamics model, an MPC agent, and transition buffers.

Per task (reference §1.1): ``init_random_steps`` steps with N(0, I) actions (clipped to the
action box); then MPC through the current task's model, retrained every ``retrain_every`` MPC
steps (from the first one on) for ``train_iters`` gradient steps on the task's buffer. It plans
only with the current task's model: until that model is first fitted (e.g. with
``init_random_steps=0``, before the buffer holds two transitions) it keeps acting randomly,
and says so once. Held-out transitions go to a per-task buffer used only for the model-error
matrices.
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
from hypercrl.plan import PLANNERS, BoxOptimizer, MPCAgent, make_optimizer
from hypercrl.seeds import seed_of

log = logging.getLogger("hypercrl")


class ModelBasedLearner(Learner):
    """ContinualDynamics (any method of ``hypercrl.cl``) + an MPC agent + buffers."""

    uses_planner = True
    saved_suffix = ".pt"

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
        # evaluation plans with its own agent and one optimiser per episode (batch_policy),
        # so that it leaves the training planner's state alone
        self._eval_agent: MPCAgent | None = None
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

    def _new_optimizer(self, generator: torch.Generator) -> BoxOptimizer:
        cfg = self.cfg
        return make_optimizer(self.planner, self.low, self.high, cfg.horizon,
                              device=cfg.device, generator=generator)

    def _new_dynamics(self) -> ContinualDynamics:
        cfg = self.cfg
        return ContinualDynamics(
            self.s_dim, self.a_dim, cfg.method, seed=cfg.seed, hidden=cfg.hidden,
            probabilistic=cfg.probabilistic, normalize_targets=cfg.normalize_targets,
            state_spec=self.state_kinds, batch_size=cfg.batch_size, device=cfg.device,
            **cfg.method_options,
        )

    # --- training -----------------------------------------------------------------------------
    def begin_task(self, task: int) -> None:
        cfg = self.cfg
        self.task = self.dynamics.begin_task()
        if self.task != task:
            raise ValueError(f"begin_task({task}) but the model expects task {self.task}")
        self.step, self.fitted = 0, False
        capacity = cfg.buffer_size or max(1, cfg.init_random_steps + cfg.mpc_steps)
        self.buffer = TransitionBuffer(self.s_dim, self.a_dim, capacity)
        self.heldout[task] = TransitionBuffer(self.s_dim, self.a_dim, cfg.heldout_size)

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
        mpc_step = self.step - cfg.init_random_steps  # index of the next MPC step
        due = mpc_step >= 0 and mpc_step % cfg.retrain_every == 0
        # the last retrain point is the last MPC step; a task without MPC steps trains once
        if due and (mpc_step < cfg.mpc_steps or mpc_step == 0):
            return self._retrain()
        return {}

    def _retrain(self) -> dict[str, float]:
        s, a, s2 = self.buffer.arrays()
        if len(s) < 2:
            return {}
        stats = self.dynamics.fit(s, a, s2, steps=self.cfg.train_iters, progress=self.progress)
        self.counts["gradient_steps"] += self.cfg.train_iters
        self.fitted = True
        self._plan_for(self.task)  # fetch the new weights once for this training round
        return stats

    def end_episode(self) -> dict[str, float]:
        out = {"plan/ms_per_step": float(np.mean(self._plan_ms))} if self._plan_ms else {}
        self._plan_ms = []
        self.agent.reset()
        return out

    def end_task(self) -> dict[str, list[float]]:
        self.dynamics.end_task()
        task, self.task, self.buffer = self.task, None, None
        return self.model_errors(task)

    # --- evaluation ---------------------------------------------------------------------------
    def _plan_for(self, task: int) -> None:
        self.agent.reward = self.rewards[task]
        self.agent.set_task(task)

    def policy(self, task: int) -> Policy:
        self._plan_for(task)
        return _MPCPolicy(self.agent)

    def batch_policy(self, task: int, episodes: int) -> BatchPolicy:
        while len(self._eval_optimizers) < max(episodes, 1):  # the agent needs one
            self._eval_optimizers.append(
                self._new_optimizer(torch.Generator(device=self.cfg.device)))
        if self._eval_agent is None:
            self._eval_agent = MPCAgent(self.dynamics, self.rewards[task],
                                        self._eval_optimizers[0], compile=self.cfg.compile)
        self._eval_agent.reward = self.rewards[task]
        self._eval_agent.set_task(task)  # the task's current weights
        return _MPCBatchPolicy(self._eval_agent, self._eval_optimizers[:episodes])

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
        h = self.cfg.horizon
        # consecutive rows form a segment only where s2[k] == s[k + 1]
        starts = [k for k in range(0, len(s) - h + 1)
                  if np.array_equal(s2[k : k + h - 1], s[k + 1 : k + h])][::h]
        if not starts:
            return float("nan")
        idx = np.asarray(starts)[:, None] + np.arange(h)[None]
        pred = self.dynamics.predictor(task)
        dev = self.dynamics.device
        with torch.no_grad():
            roll = pred.rollout(torch.as_tensor(s[idx[:, 0]], device=dev),
                                torch.as_tensor(a[idx], device=dev))
        truth = torch.as_tensor(s2[idx[:, -1]], device=dev)
        return float((roll[:, -1] - truth).pow(2).mean())

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
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._set_dynamics(ContinualDynamics.load_from_state(state["dynamics"],
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

    def save(self, path: str) -> None:
        self.dynamics.save(path)

    def load(self, path: str) -> None:
        self._set_dynamics(ContinualDynamics.load(path, device=self.cfg.device))

    def _set_dynamics(self, dynamics: ContinualDynamics) -> None:
        self.dynamics = dynamics
        self.agent = MPCAgent(dynamics, self.rewards[0], self.agent.optimizer,
                              compile=self.cfg.compile)
        self._eval_agent = None  # made again around the new dynamics when next evaluating


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
    """Plans for several episodes together (:meth:`MPCAgent.plan_many`), episode ``e`` with
    its own optimiser, whose generator ``reset(seeds)`` seeds with ``seeds[e]``: each episode
    draws the noise and takes the actions :class:`_MPCPolicy` reset with that seed would."""

    def __init__(self, agent: MPCAgent, optimizers: list[BoxOptimizer]) -> None:
        self.agent = agent
        self.optimizers = optimizers

    def reset(self, seeds: Sequence[int]) -> None:
        if len(seeds) != len(self.optimizers):
            raise ValueError(f"{len(seeds)} seeds for {len(self.optimizers)} episodes")
        for optimizer, seed in zip(self.optimizers, seeds, strict=True):
            optimizer.generator.manual_seed(seed)
            optimizer.reset()

    def __call__(self, obs: np.ndarray, episodes: Sequence[int]) -> np.ndarray:
        plans = self.agent.plan_many(obs, [self.optimizers[e] for e in episodes])
        return plans[:, 0].cpu().numpy().astype(np.float32)
