"""Typed run configuration: one flat dataclass, resolved once and written to the run dir.

Resolution order: the task sequence's own numbers (the original's schedule, the ``paper``
profile) -> the profile's changes -> ``--set key=value`` overrides. Environment-specific
profile numbers come from the sequence (``extras["profiles"]``) as data; the generic
fallbacks below apply where a sequence gives none.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any

PROFILES = ("paper", "quick", "smoke")

# generic profile changes, used where a sequence gives no numbers of its own
GENERIC_PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": {
        "init_random_steps": 1000, "mpc_steps": 1000, "retrain_every": 250, "train_iters": 500,
        "eval_every": 0, "eval_episodes": 2, "population": 200, "elites": 20, "iterations": 4,
    },
    "smoke": {
        "init_random_steps": 30, "mpc_steps": 20, "retrain_every": 10, "train_iters": 5,
        "eval_every": 0, "eval_episodes": 1, "episode_steps": 10, "horizon": 3,
        "population": 16, "elites": 4, "iterations": 2, "hidden": (16, 16),
        "hnet_hidden": (8, 8), "buffer_size": 1000, "coreset_size": 20, "heldout_size": 20,
    },
}


@dataclasses.dataclass
class RunConfig:
    """Everything a run depends on; every number can be overridden with ``--set``."""

    sequence: str = ""  # the task family, filled from the sequence
    backend: str = "mujoco"
    method: str = "hnet"
    seed: int = 0
    profile: str = "quick"
    num_tasks: int = 0  # 0: every task of the sequence
    # schedule, in env steps and gradient steps (reference §1.3)
    init_random_steps: int = 2000
    mpc_steps: int = 4000
    retrain_every: int = 200
    train_iters: int = 2000
    batch_size: int = 100
    eval_every: int = 0  # MPC steps between evaluations of all seen tasks; 0: at task end only
    eval_episodes: int = 5
    episode_steps: int = 100
    buffer_size: int = 100_000  # the current task's most recent transitions kept for training
    heldout_size: int = 500  # per task, for the model-error matrix only, never trained on
    heldout_fraction: float = 0.1
    checkpoint_every: int = 0  # env steps between mid-task checkpoints; 0: at task end only
    # planner (reference §4)
    planner: str = "cem"
    horizon: int = 20
    population: int = 500
    elites: int = 40
    iterations: int = 5
    init_std: float = 1.0
    # model and method (reference §2, §3, appendix)
    hidden: tuple[int, ...] = (200, 200)
    probabilistic: bool = False
    hnet_hidden: tuple[int, ...] = (50, 50)
    hnet_activation: str = "elu"
    beta: float = 0.05
    lr: float = 0.0  # 0: the method's default (hnet 1e-4, baselines 1e-3)
    coreset_size: int = 100
    device: str = "cpu"
    compile: bool = False  # torch.compile the planner's rollout + reward (pays on CUDA only)
    video: bool = False

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}")
        return cls(**{k: _coerce(k, v, fields[k].type) for k, v in data.items()})


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> typed dict; a bad key or value is a ValueError naming it."""
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        if key not in fields:
            raise ValueError(f"--set {key}: unknown key; valid: {', '.join(sorted(fields))}")
        out[key] = _parse(key, value.strip(), fields[key].type)
    return out


def from_sequence(seq: Any, profile: str, **values: Any) -> RunConfig:
    """The config of ``profile`` for a task sequence, then ``values`` on top."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {list(PROFILES)}")
    sch, pl, mo = seq.schedule, seq.planner, seq.model
    base: dict[str, Any] = {
        "sequence": seq.family, "backend": seq.backend, "profile": profile,
        "init_random_steps": sch.init_random_steps, "mpc_steps": sch.mpc_steps,
        "retrain_every": sch.retrain_every, "train_iters": sch.train_iters,
        "batch_size": sch.batch_size, "eval_every": sch.eval_every,
        "eval_episodes": sch.eval_episodes, "episode_steps": seq.episode_steps,
        "coreset_size": sch.coreset_size,
        "horizon": pl.horizon, "population": pl.population, "elites": pl.elites,
        "iterations": pl.iterations, "init_std": pl.init_std,
        "hidden": tuple(mo.target_hidden), "probabilistic": mo.probabilistic,
        "hnet_hidden": tuple(mo.hnet_hidden), "hnet_activation": mo.hnet_activation,
        "beta": mo.beta,
    }
    base.update(GENERIC_PROFILES[profile])
    base.update(dict(seq.extras.get("profiles", {}).get(profile, {})))
    base.update(values)
    return RunConfig.from_dict(base)


def _parse(key: str, text: str, tp: Any) -> Any:
    try:
        if tp in (bool, "bool"):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if _is_tuple(tp):
            return tuple(int(x) for x in text.strip("()[]").split(",") if x.strip())
        return _coerce(key, text, tp)
    except (TypeError, ValueError) as err:
        raise ValueError(f"--set {key}={text!r}: {err}") from None


def _is_tuple(tp: Any) -> bool:
    return tp in ("tuple[int, ...]",) or typing.get_origin(tp) is tuple


def _coerce(key: str, value: Any, tp: Any) -> Any:
    name = tp if isinstance(tp, str) else getattr(tp, "__name__", str(tp))
    if _is_tuple(tp):
        return tuple(int(v) for v in value)
    if name == "int":
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return int(float(value))
    if name == "float":
        return float(value)
    if name == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value
    if name == "str" or isinstance(tp, types.UnionType):
        return str(value)
    return value
