"""Model-predictive control: plan through a dynamics model at every step, execute the first action.

The agent turns (dynamics, reward, current state) into the objective its optimiser maximises:

    returns[p] = sum_h discount^h * reward(s_h, a_h, s_{h+1}),   s_0 = current state,

with ``s_{h+1}`` predicted by the task's model for the planned (in-box) actions. The rollout is
one batched loop over the horizon; the task's generated weights are fetched once per task and
per training round (:meth:`MPCAgent.set_task`, :meth:`MPCAgent.refresh`), never per step.
:meth:`MPCAgent.plan_many` plans from several states at once, each with its own optimiser,
their populations scored together (:mod:`hypercrl.plan.lockstep`); :func:`plan_across` does so
for states of several tasks, each with its task's agent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from hypercrl.plan.base import BoxOptimizer, TrajectoryOptimizer
from hypercrl.plan.lockstep import plan_together

StepFn = Callable[[Tensor, Tensor], Tensor]
"""Batched one-step dynamics: state ``[N, S]``, action ``[N, A]`` -> next state ``[N, S]``."""

RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""Batched reward: state ``[N, S]``, action ``[N, A]``, next state ``[N, S]`` -> ``[N]``."""


@runtime_checkable
class Rollout(Protocol):
    """A one-task model that predicts whole action sequences (``hypercrl.model.Predictor``)."""

    def rollout(self, state: Tensor, actions: Tensor) -> Tensor:
        """Start state ``[S]`` (shared) or ``[P, S]`` (one per row) and actions ``[P, H, A]`` ->
        predicted next states ``[P, H, S]``, or ``[K * P, H, S]``: K particles per sequence
        (an ensemble's, ``hypercrl.model.EnsemblePredictor``; rows ``k * P + p``), whose
        rewards the agent averages per sequence, less ``model.disagreement`` (if it has one)
        times their spread."""
        ...


@runtime_checkable
class PredictorSource(Protocol):
    """Makes a task's predictor, its weights generated once (``hypercrl.ContinualDynamics``)."""

    def predictor(self, task: int, device: str | torch.device | None = None) -> StepFn:
        """A batched next-state predictor of ``task``; it may also have ``rollout``."""
        ...


class StepRollout:
    """Rolls a batched one-step model out over a horizon, in one loop of H batched calls.

    Args:
        step: next state ``[P, S]`` from state ``[P, S]`` and action ``[P, A]``.
    """

    def __init__(self, step: StepFn) -> None:
        self.step = step

    @torch.no_grad()
    def rollout(self, state: Tensor, actions: Tensor) -> Tensor:
        """Start state ``[S]`` or ``[P, S]``, actions ``[P, H, A]`` -> next states ``[P, H, S]``
        (a view of an ``[H, P, S]`` buffer)."""
        p, h, _ = actions.shape
        s = state.expand(p, state.shape[-1])
        out = torch.empty(h, p, s.shape[-1], device=actions.device, dtype=actions.dtype)
        for t in range(h):
            s = out[t].copy_(self.step(s, actions[:, t]))
        return out.transpose(0, 1)


def as_rollout(model: StepFn) -> Rollout:
    """``model`` itself when it has a ``rollout`` method, else a :class:`StepRollout` of it."""
    return model if isinstance(model, Rollout) else StepRollout(model)


class MPCAgent:
    """Acts by optimising an action sequence through a model and executing its first action.

    Args:
        dynamics: a :class:`PredictorSource` (``ContinualDynamics``; its ``predictor(task)`` is
            called on :meth:`set_task` and :meth:`refresh` only) or a batched step function
            ``f(state [P, S], action [P, A]) -> [P, S]`` used for every task (ground truth, an
            oracle). Either may offer ``rollout``, which is then used.
        reward: batched ``r(state, action, next_state) -> [N]``, called once per objective
            evaluation on all ``P * H`` transitions.
        optimizer: any :class:`~hypercrl.plan.base.TrajectoryOptimizer`; it owns the action
            bounds, the horizon and the device.
        discount: weight ``discount^h`` of step ``h``; 1 (the original) sums rewards.
        task: task to plan for from the start (:meth:`set_task`); needed before :meth:`act`
            when ``dynamics`` is a PredictorSource.
        compile: run the rollout and the reward through ``torch.compile`` (CUDA graphs on a
            GPU). Meant for CUDA; on CPU it does not pay (docs/BENCHMARKS.md). One graph is
            compiled per population size and reward function; a refreshed predictor of the
            same shapes reuses it.
    """

    def __init__(
        self,
        dynamics: PredictorSource | StepFn,
        reward: RewardFn,
        optimizer: TrajectoryOptimizer,
        *,
        discount: float = 1.0,
        task: int | None = None,
        compile: bool = False,
    ) -> None:
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount={discount!r} must lie in (0, 1]")
        self.optimizer = optimizer
        self.reward = reward
        self.device = optimizer.device
        self.horizon = optimizer.horizon
        self.discount = discount
        self._source = dynamics if isinstance(dynamics, PredictorSource) else None
        self._model: Rollout | None = None if self._source is not None else as_rollout(dynamics)
        self.task: int | None = None
        self._state: Tensor | None = None  # current state [S], written by act()
        dtype = optimizer.lower.dtype
        self._weights = discount ** torch.arange(self.horizon, dtype=torch.float64)
        self._weights = self._weights.to(device=self.device, dtype=dtype)  # [H]
        self._returns_fn = _returns
        self._rewards_fn = _rewards
        if compile:
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            self._returns_fn = torch.compile(_returns, mode=mode, dynamic=False)
            self._rewards_fn = torch.compile(_rewards, mode=mode, dynamic=False)
        if task is not None:
            self.set_task(task)

    # lifecycle --------------------------------------------------------------------------------
    def set_task(self, task: int) -> None:
        """Plan for ``task`` from now on: fetch its weights once and forget the planner state."""
        self.task = task
        self.refresh()
        self.optimizer.reset()

    def refresh(self) -> None:
        """Fetch the current task's weights again (call after each training round)."""
        if self._source is None:
            return
        if self.task is None:
            raise ValueError("refresh() before set_task(): no task to fetch weights for")
        self._model = as_rollout(self._source.predictor(self.task, device=self.device))

    def reset(self) -> None:
        """Forget the planner's warm-start state (call at every episode start)."""
        self.optimizer.reset()

    # acting -----------------------------------------------------------------------------------
    def plan(self, obs: Tensor) -> Tensor:
        """Optimised action sequence ``[H, A]`` from state ``obs [S]`` (array-like accepted)."""
        self._state = self._states(obs, 1)
        return self.optimizer.optimize(self._objective)

    def plan_many(self, obs: Tensor, optimizers: Sequence[BoxOptimizer]) -> Tensor:
        """Optimised action sequences ``[E, H, A]`` from states ``obs [E, S]``, state ``e``
        planned by ``optimizers[e]`` (distinct, of this agent's horizon) exactly as it would
        plan alone, with its own warm start and noise; each iteration's populations of all E
        are scored in one rollout from their own start states. ``self.optimizer`` is unused.
        """
        return plan_across([self] * len(optimizers), obs, optimizers)

    def _states(self, obs: Tensor, dim: int) -> Tensor:
        """``obs`` as a tensor of ``dim`` dimensions on the planning device and dtype."""
        if self._model is None:
            raise ValueError("no task set: call set_task(task) before act()/plan()")
        states = torch.as_tensor(obs, dtype=self._weights.dtype).to(self.device)
        if states.dim() != dim:
            shape = "one state [S]" if dim == 1 else "states [E, S]"
            raise ValueError(f"obs must be {shape}, got shape {tuple(states.shape)}")
        return states

    def act(self, obs: Tensor) -> Tensor:
        """First action ``[A]`` of the plan from ``obs [S]``, on the optimiser's device."""
        return self.plan(obs)[0]

    def predict_plan(self, plan: Tensor) -> tuple[Tensor, Tensor]:
        """What the model predicts for ``plan`` ``[H, A]`` from the state of the last
        :meth:`plan` call: the next states ``[K, H, S]`` of each of its K particles (1 without
        an ensemble) and the rewards ``[H]`` the planner scores them with (particles averaged,
        less any disagreement penalty), so ``rewards.sum()`` is the plan's predicted return
        (undiscounted)."""
        if self._state is None:
            raise ValueError("predict_plan() before plan(): no start state")
        acts = torch.as_tensor(plan, dtype=self._weights.dtype).to(self.device)
        if acts.shape != (self.horizon, self.optimizer.lower.shape[-1]):
            raise ValueError(f"plan must be [H, A] = [{self.horizon}, "
                             f"{self.optimizer.lower.shape[-1]}], got {tuple(acts.shape)}")
        with torch.no_grad():
            path = self._model.rollout(self._state, acts[None])  # [K, H, S]
            rewards = _path_rewards(self._model, self.reward, self._state, acts[None], path)
        return path, rewards[:, 0]

    def _objective(self, actions: Tensor) -> Tensor:
        """Returns ``[P]`` of action sequences ``[P, H, A]`` from the current state."""
        return self._returns_fn(self._model, self.reward, self._state, actions, self._weights)


def plan_across(agents: Sequence[MPCAgent], obs: Tensor,
                optimizers: Sequence[BoxOptimizer]) -> Tensor:
    """Optimised action sequences ``[E, H, A]`` from states ``obs [E, S]``, state ``e`` planned
    by ``agents[e]`` (its task's model and reward) with ``optimizers[e]`` (distinct), exactly
    as that agent would plan it alone: states of several tasks planned together, in lockstep
    (:func:`~hypercrl.plan.lockstep.plan_together`). Each objective call scores the
    populations of every plan still running; those of one agent are rolled out together, in
    plan order, through its model (so a task's rows see the same matmuls as when only that
    task's states are planned), and each plan's discounted sum is taken over its own rows.
    A model whose rows depend on the batch they are rolled out in (an ensemble's ``tsinf``
    draws; its ``rows_independent`` is False) rolls out one plan at a time, as alone.
    The agents share their horizon and device; ``agents[e].optimizer`` is unused.
    """
    if len(agents) != len(optimizers):
        raise ValueError(f"{len(agents)} agents but {len(optimizers)} optimizers")
    if not agents:
        raise ValueError("nothing to plan: no agents")
    first = agents[0]
    if any(a.horizon != first.horizon or a.device != first.device for a in agents):
        raise ValueError("the agents planned together must share their horizon and device")
    if any(o.horizon != first.horizon for o in optimizers):
        raise ValueError(f"every optimizer must plan over the agents' horizon {first.horizon}")
    if any(a._model is None for a in agents):
        raise ValueError("no task set: call set_task(task) on every agent before planning")
    states = first._states(obs, 2)
    if len(optimizers) != states.shape[0]:
        raise ValueError(f"{states.shape[0]} states but {len(optimizers)} optimizers")
    index: dict[int, int] = {}  # an agent's id -> its group, in order of first appearance
    group = [index.setdefault(id(a), len(index)) for a in agents]
    distinct = list({id(a): a for a in agents}.values())

    def objective(actions: Tensor, owners: list[int], sizes: list[int]) -> Tensor:
        blocks = actions.split(sizes)
        returns: list[Tensor | None] = [None] * len(owners)
        for g, agent in enumerate(distinct):
            mine = [k for k, o in enumerate(owners) if group[o] == g]
            if not mine:
                continue
            # a model whose rows depend on the batch (tsinf draws): one plan per rollout
            together = getattr(agent._model, "rows_independent", True)
            for part in [mine] if together else [[k] for k in mine]:
                rows = [sizes[k] for k in part]
                acts = blocks[part[0]] if len(part) == 1 else torch.cat([blocks[k] for k in part])
                owner = torch.tensor([owners[k] for k in part], device=agent.device)
                start = states[owner].repeat_interleave(
                    torch.tensor(rows, device=agent.device), dim=0, output_size=acts.shape[0])
                rewards = agent._rewards_fn(agent._model, agent.reward, start, acts)  # [H, N]
                # the discounted sum per plan, as that plan alone would compute it: one [H] x
                # [H, N] product rounds some columns differently than [H] x [H, P] does
                for k, r in zip(part, rewards.split(rows, dim=1), strict=True):
                    returns[k] = agent._weights @ r
        return torch.cat(returns)

    return torch.stack(plan_together([o.plan_steps() for o in optimizers], objective))


def _returns(
    model: Rollout, reward: RewardFn, state: Tensor, actions: Tensor, weights: Tensor
) -> Tensor:
    """``sum_h weights[h] * reward(s_h, a_h, s_{h+1})`` ``[P]`` for actions ``[P, H, A]`` from
    start state ``[S]``."""
    return weights @ _rewards(model, reward, state, actions)


def _rewards(model: Rollout, reward: RewardFn, state: Tensor, actions: Tensor) -> Tensor:
    """``reward(s_h, a_h, s_{h+1})`` ``[H, P]`` for actions ``[P, H, A]`` from start state
    ``[S]`` or ``[P, S]``."""
    return _path_rewards(model, reward, state, actions, model.rollout(state, actions))


def _path_rewards(model: Rollout, reward: RewardFn, state: Tensor, actions: Tensor,
                  path: Tensor) -> Tensor:
    """:func:`_rewards` of the predicted next states ``path`` ``[K * P, H, S]`` (the model's
    rollout of ``actions`` from ``state``)."""
    p, h, a = actions.shape
    nxt = path.transpose(0, 1)  # [H, K * P, S]
    k = nxt.shape[1] // p  # particles per sequence (an ensemble's members), else 1
    if k > 1:
        actions = actions.repeat(k, 1, 1)
        if state.dim() == 2:
            state = state.repeat(k, 1)
    s = nxt.shape[-1]
    prev = torch.empty_like(nxt)  # s_h, [H, K * P, S]
    prev[0] = state
    prev[1:] = nxt[:-1]
    n = k * p
    r = reward(
        prev.reshape(h * n, s), actions.transpose(0, 1).reshape(h * n, a), nxt.reshape(h * n, s)
    )
    if k == 1:
        return r.view(h, p)
    r = r.view(h, k, p).mean(1)  # each sequence's particles averaged
    penalty = getattr(model, "disagreement", 0.0)
    if penalty:
        r = r - penalty * _spread(nxt, k)
    return r


def _spread(particles: Tensor, k: int) -> Tensor:
    """The particles' disagreement per sequence and step: next states ``[H, K * P, S]``
    (particle-major) -> their standard deviation over the K particles of each sequence,
    averaged over state dimensions, ``[H, P]``."""
    h, n, s = particles.shape
    return particles.view(h, k, n // k, s).std(dim=1, correction=0).mean(-1)
