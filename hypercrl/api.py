"""ContinualDynamics: learn dynamics task after task, predict for any task seen."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from hypercrl.cl import METHODS, strategy_class
from hypercrl.cl.base import check_bool, check_choice, check_int, check_widths
from hypercrl.data import EpochBatches
from hypercrl.devices import resolve_device
from hypercrl.hnet.base import ACTIVATIONS
from hypercrl.io import atomic_save, load_checked
from hypercrl.model import EnsemblePredictor, Normalizer, Predictor, StateSpec, TargetNet
from hypercrl.model.inference import TaskInference, task_errors, task_scores

FORMAT = "hypercrl.ContinualDynamics"


class DivergenceError(ValueError):
    """Training produced a non-finite loss or weight; the message names task and quantity."""
FORMAT_VERSION = 1


class ContinualDynamics:
    """A dynamics model learned continually over tasks with a chosen method.

    Args:
        state_dim: S, the state size.
        action_dim: A, the action size.
        method: one of ``METHODS`` ("hnet", "chunked_hnet", "finetune", "single",
            "multitask", "coreset", "ewc", "si").
        seed: seeds initialisation and minibatch sampling.
        hidden: target-network hidden widths.
        activation: target-network activation.
        probabilistic: predict mean and log-variance, trained with the Gaussian NLL.
        state_spec: per-dimension kinds ("delta", "absolute", "angle", "quat"); all "delta"
            by default.
        batch_size: minibatch size of ``fit``.
        normalize_targets: standardise the training targets per task as well as the inputs.
            False (the original, reference §1.2): inputs (state features and actions) are
            standardised per task, targets (state deltas) are trained raw.
        clip_states: predictions (and so the planner's rollouts) stay inside the range of
            states each task's data visited, widened by a tenth of it
            (:func:`~hypercrl.model.predictor.state_bounds`). False (the original): a
            rollout may run off the data into states the model never saw, whose predicted
            rewards a planner then chases. Not part of the original method.
        absolute_inputs: feed the state's "absolute" dims (predicted outright, e.g.
            HalfCheetah's vx) to the model as inputs too. False (the original, reference
            §2.4): they are outputs only. Models saved before this option fed them.
        device: torch device for training and prediction ("cpu", "cuda", "cuda:1"); one
            that does not exist here (CUDA without CUDA) is a ValueError naming it.
        **options: the method's options (e.g. ``beta``, ``lr``, ``hnet_hidden``, ``emb_dim``
            for hnet; ``lam`` for ewc; ``coreset_size`` for coreset). Unknown names raise.
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        method: str = "hnet",
        seed: int = 0,
        *,
        hidden: Sequence[int] = (200, 200),
        activation: str = "relu",
        probabilistic: bool = False,
        state_spec: Sequence[str] | None = None,
        batch_size: int = 100,
        normalize_targets: bool = False,
        clip_states: bool = False,
        absolute_inputs: bool = False,
        device: str | torch.device = "cpu",
        **options: Any,
    ) -> None:
        # every argument is checked before anything is built
        state_dim = check_int("state_dim", state_dim)
        action_dim = check_int("action_dim", action_dim)
        batch_size = check_int("batch_size", batch_size)
        seed = check_int("seed", seed, minimum=None)
        hidden = check_widths("hidden", hidden)
        activation = check_choice("activation", activation, ACTIVATIONS)
        probabilistic = check_bool("probabilistic", probabilistic)
        normalize_targets = check_bool("normalize_targets", normalize_targets)
        clip_states = check_bool("clip_states", clip_states)
        absolute_inputs = check_bool("absolute_inputs", absolute_inputs)
        self.device = resolve_device(device)
        cls = strategy_class(method)
        strategy_options = cls.make_options(**options)
        kinds = tuple(state_spec) if state_spec is not None else ("delta",) * state_dim
        if len(kinds) != state_dim:
            raise ValueError(f"state_spec has {len(kinds)} entries but state_dim is {state_dim}")
        self.spec = StateSpec(kinds, absolute_inputs=absolute_inputs)
        self.config: dict[str, Any] = {
            "state_dim": state_dim,
            "action_dim": action_dim,
            "method": method,
            "seed": seed,
            "hidden": hidden,
            "activation": activation,
            "probabilistic": probabilistic,
            "state_spec": kinds,
            "batch_size": batch_size,
            "normalize_targets": normalize_targets,
            "clip_states": clip_states,
            "absolute_inputs": absolute_inputs,
            "options": dataclasses.asdict(strategy_options),
        }
        self.state_dim, self.action_dim, self.method = state_dim, action_dim, method
        self.batch_size = batch_size
        self.normalize_targets = normalize_targets
        init_gen = torch.Generator().manual_seed(seed)
        self.sample_gen = torch.Generator().manual_seed(seed + 1)
        self.net = TargetNet(
            self.spec.feature_dim + action_dim, state_dim, hidden, activation, probabilistic
        ).to(self.device)
        self.strategy = cls(self.net, strategy_options, init_gen)
        self.normalizers: list[Normalizer] = []
        self.current_task: int | None = None
        self._data: tuple[torch.Tensor, torch.Tensor] | None = None  # current task, raw x, y
        self._predictors: dict[int, Predictor] = {}
        self.clip_states = clip_states

    @property
    def clip_states(self) -> bool:
        """Whether predictions stay inside each task's visited range (see the class doc)."""
        return self._clip_states

    @clip_states.setter
    def clip_states(self, value: bool) -> None:
        self._clip_states = check_bool("clip_states", value)
        self.config["clip_states"] = self._clip_states  # a save records what predictions do
        self._predictors.clear()  # cached predictors were built with the old setting

    # --- task lifecycle -------------------------------------------------------------------
    @property
    def num_tasks(self) -> int:
        """Tasks begun so far (the current one included)."""
        return len(self.normalizers)

    def begin_task(self) -> int:
        """Start the next task; returns its id (0, 1, ...)."""
        if self.current_task is not None:
            raise ValueError(f"task {self.current_task} is still running: call end_task() first")
        task = self.num_tasks
        self.normalizers.append(self._new_normalizer())
        self.strategy.begin_task(task)
        self.current_task = task
        self._data = None
        self._predictors.pop(task, None)
        return task

    def fit(
        self,
        states: Any,
        actions: Any,
        next_states: Any,
        steps: int = 2000,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> dict[str, float]:
        """Train ``steps`` gradient steps on the current task's transitions.

        Minibatches are drawn as the original's shuffled data loader draws them: epochs of a
        fresh random permutation, cut into batches, the incomplete last batch dropped; every
        ``fit`` starts a new epoch. With fewer transitions than a batch, the batch is drawn
        with replacement.

        Pass all of the task's data collected so far ([N, S], [N, A], [N, S]; numpy or torch):
        it replaces what an earlier ``fit`` of the same task was given, and the task's
        normaliser is refitted on it. Returns the mean of each logged scalar over the last
        (up to) 100 steps.
        """
        if self.current_task is None:
            raise ValueError("fit() called outside a task: call begin_task() first")
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        batch_size = batch_size or self.batch_size
        s, a, s2 = self._check_transitions(states, actions, next_states)
        task = self.current_task
        x = torch.cat([self.spec.features(s), a], dim=1)
        y = self.spec.targets(s, s2)
        norm = self.normalizers[task]
        norm.fit(x, y)
        norm.fit_bounds(torch.cat([s, s2]))
        self._data = (x, y)
        xn, yn = norm.norm_x(x), norm.norm_y(y)
        # training moves shared weights, so every task's cached predictor is stale
        self._predictors.clear()
        history: list[dict[str, torch.Tensor]] = []
        # inputs and targets resident as one tensor on the device: one gather per batch
        data, width = torch.cat([xn, yn], dim=1), xn.shape[1]
        batches = EpochBatches(xn.shape[0], batch_size, self.sample_gen, self.device)
        for _ in tqdm(range(steps), desc=f"fit task {task}", disable=not progress, leave=False):
            batch = data[next(batches)]
            history.append(self.strategy.train_step(task, batch[:, :width], batch[:, width:]))
            if len(history) > 100:
                history.pop(0)
        keys = {k for h in history for k in h}
        stats = {
            k: float(torch.stack([h[k] for h in history if k in h]).mean()) for k in sorted(keys)
        }
        self._check_finite(task, stats)
        return stats

    def _check_finite(self, task: int, stats: dict[str, float]) -> None:
        """DivergenceError if a training scalar or a generated weight of ``task`` is not
        finite: a diverged model must stop the run, never be evaluated or ranked."""
        for key, value in stats.items():
            if not math.isfinite(value):
                raise DivergenceError(f"task {task}: training diverged: {key} is {value} over "
                                      "the last steps of this fit")
        with torch.no_grad():
            for name, w in self.strategy.weights([task]).items():
                if not torch.isfinite(w).all():
                    raise DivergenceError(f"task {task}: training diverged: the generated "
                                          f"weight {name} holds NaN or inf")

    def end_task(self, states: Any = None, actions: Any = None, next_states: Any = None) -> None:
        """Finish the current task: freeze its normaliser and let the method consolidate.

        The method consolidates on the task's training data (EWC's Fisher, coreset's draw,
        multitask's memory); the original does so on all of it. Pass the task's whole
        training data here when transitions came after the last ``fit`` (a run's last
        retrain is ``retrain_every`` steps before its task ends); without them, the last
        ``fit``'s data. Either way the normaliser stays as the last ``fit`` left it, so the
        weights keep their meaning.
        """
        if self.current_task is None:
            raise ValueError("end_task() called outside a task: call begin_task() first")
        given = [v is not None for v in (states, actions, next_states)]
        if any(given) and not all(given):
            raise ValueError("end_task(): pass states, actions and next_states together, "
                             "or none of them")
        task = self.current_task
        norm = self.normalizers[task]
        if all(given):
            s, a, s2 = self._check_transitions(states, actions, next_states)
            self._data = (torch.cat([self.spec.features(s), a], dim=1), self.spec.targets(s, s2))
        norm.freeze()
        if self._data is None:
            empty = torch.zeros(0, self.net.in_dim, device=self.device)
            xn, yn = empty, torch.zeros(0, self.state_dim, device=self.device)
        else:
            xn, yn = norm.norm_x(self._data[0]), norm.norm_y(self._data[1])
        self.strategy.end_task(task, xn, yn)
        self.current_task = None
        self._data = None
        self._predictors.clear()

    # --- prediction -----------------------------------------------------------------------
    def predictor(self, task: int, device: str | torch.device | None = None
                  ) -> Predictor | EnsemblePredictor:
        """A fast predictor for ``task``, its weights generated once (cached until trained);
        an :class:`~hypercrl.model.predictor.EnsemblePredictor` for an ensemble."""
        self._check_task(task)
        dev = resolve_device(device) if device is not None else self.device
        cached = self._predictors.get(task)
        if cached is not None and cached.device == dev:
            return cached
        with torch.no_grad():
            weights = {k: v.to(dev) for k, v in self.strategy.weights([task]).items()}
        net, norm = self.net, self.normalizers[task]
        if dev != self.device:
            net, norm = _copy_to(net, dev), _copy_to(norm, dev)
        members = [Predictor(net, {k: v[m] for k, v in weights.items()}, self.spec, norm,
                             clip=self.clip_states)
                   for m in range(self.strategy.members)]
        pred = members[0]
        if len(members) > 1:
            o = self.strategy.opts
            pred = EnsemblePredictor(members, o.propagation, o.disagreement)
        self._predictors[task] = pred
        return pred

    def predict(self, states: Any, actions: Any, task: int) -> Any:
        """Next states [N, S] for ``task``; numpy in, numpy out; torch in, torch out."""
        self._check_task(task)
        s, a, _ = self._check_transitions(states, actions, None)
        out = self.predictor(task)(s, a)
        return _like(out, states)

    def mse(self, states: Any, actions: Any, next_states: Any, task: int) -> float:
        """Mean squared one-step prediction error of ``task`` on the given transitions."""
        s, a, s2 = self._check_transitions(states, actions, next_states)
        pred = self.predictor(task)(s, a)
        return float((pred - s2).pow(2).mean())

    def infer_task(self, states: Any, actions: Any, next_states: Any) -> TaskInference:
        """The seen task whose model explains the transitions ``[N, S]``, ``[N, A]``,
        ``[N, S]`` best, with the score of every seen task (a loss, lower is better: the
        normalised squared error, or the negative log-likelihood of a probabilistic model;
        ``hypercrl.model.inference``). Every task's weights are generated in one call and
        evaluated in one batched forward."""
        if self.num_tasks == 0:
            raise ValueError("infer_task() before any task: no task to choose from")
        s, a, s2 = self._check_transitions(states, actions, next_states)
        with torch.no_grad():
            weights = self.strategy.weights(list(range(self.num_tasks)))
        return task_scores(self.net, self.spec, self.normalizers, weights, s, a, s2,
                           self.strategy.members)

    def prediction_errors(self, states: Any, actions: Any, next_states: Any,
                          tasks: Sequence[int] | None = None) -> torch.Tensor:
        """Squared errors ``[T, N, S]`` of each listed task's predicted mean (all seen tasks
        by default) on transitions ``[N, S]``, ``[N, A]``, ``[N, S]``, in raw target units
        (``StateSpec.targets``), from one batched forward."""
        tasks = list(range(self.num_tasks)) if tasks is None else list(tasks)
        if not tasks:
            raise ValueError("prediction_errors() before any task: no task to score")
        for task in tasks:
            self._check_task(task)
        s, a, s2 = self._check_transitions(states, actions, next_states)
        with torch.no_grad():
            weights = self.strategy.weights(tasks)
        norms = [self.normalizers[t] for t in tasks]
        err, _ = task_errors(self.net, self.spec, norms, weights, s, a, s2,
                             self.strategy.members)
        return err.square()

    # --- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "config": self.config,
            "normalizers": [n.state_dict() for n in self.normalizers],
            "current_task": self.current_task,
            "data": self._data,
            "strategy": self.strategy.state_dict(),
            "sample_gen": self.sample_gen.get_state(),
            # the strategy's stream: new task embeddings and heads, replay draws
            "strategy_gen": self.strategy.generator.get_state(),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write everything (weights, embeddings, normalisers, optimiser states) atomically."""
        atomic_save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None):
        """Load a model written by :meth:`save`; ValueError if ``path`` is not one."""
        state = load_checked(path, FORMAT, FORMAT_VERSION, "saved ContinualDynamics model")
        return cls.load_from_state(state, device)

    @classmethod
    def load_from_state(cls, state: dict[str, Any], device: str | torch.device | None = None):
        """A model rebuilt from :meth:`state_dict` (its config included).

        A state written before ``normalize_targets`` existed was trained on standardised
        targets, so it loads with ``normalize_targets=True``; one written before
        ``absolute_inputs`` existed fed its absolute dims to the model, so it loads with
        ``absolute_inputs=True``.
        """
        c = dict(state["config"])
        options = c.pop("options")
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        model = cls(
            c["state_dim"], c["action_dim"], c["method"], c["seed"],
            hidden=c["hidden"], activation=c["activation"], probabilistic=c["probabilistic"],
            state_spec=c["state_spec"], batch_size=c["batch_size"],
            normalize_targets=c.get("normalize_targets", True),
            clip_states=c.get("clip_states", False),
            absolute_inputs=c.get("absolute_inputs", True),
            device=device if device is not None else "cpu", **options,
        )
        model.load_state_dict(state)
        return model

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for sd in state["normalizers"]:
            norm = self._new_normalizer()
            norm.load_state_dict(sd)
            self.normalizers.append(norm)
        self.strategy.load_state_dict(_to(state["strategy"], self.device))
        self.current_task = state["current_task"]
        self._data = _to(state["data"], self.device)
        self.sample_gen.set_state(state["sample_gen"])
        if "strategy_gen" in state:  # saved by every version since it was added
            self.strategy.generator.set_state(state["strategy_gen"])
        self._predictors.clear()

    def _new_normalizer(self) -> Normalizer:
        return Normalizer(self.net.in_dim, self.state_dim, self.normalize_targets).to(self.device)

    # --- input checks ---------------------------------------------------------------------
    def _check_task(self, task: int) -> None:
        if not isinstance(task, (int, np.integer)) or not 0 <= task < self.num_tasks:
            seen = f"0..{self.num_tasks - 1}" if self.num_tasks else "none yet"
            raise ValueError(f"task {task!r} has not been seen; seen tasks: {seen}")

    def _check_transitions(self, states, actions, next_states):
        dims = {"states": self.state_dim, "actions": self.action_dim,
                "next_states": self.state_dim}
        arrays = {"states": states, "actions": actions, "next_states": next_states}
        out = []
        n = None
        for name, value in arrays.items():
            if value is None:
                out.append(None)
                continue
            t = _as_tensor(name, value, self.device)
            if t.dim() != 2 or t.shape[1] != dims[name]:
                raise ValueError(f"{name} must have shape [N, {dims[name]}], got "
                                 f"{tuple(t.shape)}")
            if n is not None and t.shape[0] != n:
                raise ValueError(f"{name} has {t.shape[0]} rows but states has {n}")
            n = t.shape[0]
            if n == 0:
                raise ValueError(f"{name} is empty")
            if not torch.isfinite(t).all():
                raise ValueError(f"{name} contains NaN or inf")
            out.append(t)
        return tuple(out)


def _as_tensor(name: str, value: Any, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(np.asarray(value, dtype=np.float32))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} is not a numeric array: {err}") from None
    return t.to(device=device, dtype=torch.float32)


def _like(out: torch.Tensor, reference: Any) -> Any:
    if isinstance(reference, torch.Tensor):
        return out.to(device=reference.device, dtype=reference.dtype if
                      reference.dtype.is_floating_point else out.dtype)
    dtype = getattr(reference, "dtype", np.float64)
    dtype = dtype if np.issubdtype(dtype, np.floating) else np.float64
    return out.cpu().numpy().astype(dtype)


def _to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(v, device) for v in obj)
    return obj


def _copy_to(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module).to(device)


__all__ = ["METHODS", "ContinualDynamics", "DivergenceError"]
