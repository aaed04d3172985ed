"""Typed run configuration, resolved once, validated, and written to the run directory.

Every option has one home and one default:

- run-level keys (schedule, buffers, device, ...) are the fields of :class:`RunConfig`;
- a method's options are the fields of its Options dataclass (``hypercrl.cl``, or the SAC
  learner's), held resolved in ``RunConfig.method_options``;
- a planner's options are the fields of its config dataclass (``hypercrl.plan``), held
  resolved in ``RunConfig.planner_options``.

Resolution order, each layer over the one before: those homes' defaults; the task sequence's
schedule (``envs``: the original's numbers); the learner presets shipped with hypercrl
(``hypercrl/presets``: the original's network sizes, beta and CEM settings per family); the
profile's changes (``paper`` changes nothing: it is the original); ``--set key=value``.

A ``--set`` key is looked up in that order of homes: a run key, then an option of the chosen
method, then an option of the chosen planner; ``method.KEY`` and ``planner.KEY`` name the home
explicitly. A key no home of this run knows is refused, with each home's valid keys listed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from hypercrl import presets
from hypercrl.api import ContinualDynamics
from hypercrl.devices import resolve_device
from hypercrl.learners import all_methods, learner_class
from hypercrl.plan import PLANNERS

PROFILES = presets.PROFILES
MAX_SEED = 2**32 - 1  # seeds are numpy SeedSequence entropy and torch generator seeds
# run keys that only a planning method reads: the others refuse them (as planner options)
PLANNING_KEYS = ("planner", "horizon", "compile")


@dataclasses.dataclass
class RunConfig:
    """Everything a run depends on; every value can be overridden with ``--set``."""

    sequence: str = ""  # the task family
    backend: str = "mujoco"
    method: str = "hnet"
    seed: int = 0
    profile: str = "paper"
    num_tasks: int = 0  # 0: every task of the sequence
    # which of the sequence's tasks, in this order (e.g. (1,) for the second alone; a task
    # may come back); (): the first num_tasks
    tasks: tuple[int, ...] = ()
    # schedule, in env steps and gradient steps (reference §1.3)
    init_random_steps: int = 2000
    mpc_steps: int = 4000
    retrain_every: int = 200
    train_iters: int = 2000
    batch_size: int = 100
    eval_every: int = 0  # MPC steps between evaluations of all seen tasks; 0: at task end only
    curve_episodes: int = 5  # episodes per task of those evaluations (training curves)
    eval_episodes: int = 10  # episodes per cell of the performance matrix, at each task end
    episode_steps: int = 100
    buffer_size: int = 0  # the current task's recent transitions trained on; 0: all of them
    heldout_size: int = 500  # per task, for the model-error matrix only, never trained on
    heldout_fraction: float = 0.25  # of episodes; the original validates on 25 % of its data
    checkpoint_every: int = 0  # env steps between mid-task checkpoints; 0: at task end only
    # dynamics model (ContinualDynamics; reference §2)
    hidden: tuple[int, ...] = (200, 200)
    probabilistic: bool = False
    normalize_targets: bool = False  # the original trains on raw state deltas
    # keep predictions inside the range each task's data visited (not the original's;
    # ContinualDynamics(clip_states=...), docs/METHOD.md)
    clip_states: bool = False
    # feed "absolute" state dims (HalfCheetah's vx) to the model too (not the original's,
    # reference §2.4; runs before the option existed did: docs/METHOD.md)
    absolute_inputs: bool = False
    # planner (reference §4): the optimiser's name, the MPC horizon, the optimiser's options
    planner: str = "cem"
    horizon: int = 20
    planner_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    # the method's options (its Options dataclass, resolved)
    method_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    # the task's identity (beyond the original): "given", the loop tells the learner when each
    # task starts and evaluates each task with its own model (the original); "inferred", it
    # is never told, the learner detects new tasks itself (hypercrl.learners.taskfree)
    task_boundaries: typing.Literal["given", "inferred"] = "given"
    task_free_eval: bool = False  # evaluate without the task id (always so with "inferred")
    infer_window: int = 20  # W: the last W transitions a task inference looks at
    infer_every: int = 5  # k: steps between two task inferences (and detection checks)
    # task inference (task-free evaluation, new-task detection) scores only the transitions in
    # which one of these state dims changes by at least infer_change (e.g. an object's pose:
    # the steps that touch it, where the tasks differ); (): every transition
    infer_dims: tuple[int, ...] = ()
    infer_change: float = 2e-3
    detect_quantile: float = 0.95  # of a task's held-out window scores, its threshold's base
    detect_margin: float = 2.0  # the threshold is that quantile times this
    detect_patience: int = 3  # unexplained checks in a row that start a new task
    device: str = "cpu"
    compile: bool = False  # torch.compile the planner's rollout + reward (pays on CUDA only)
    video: bool = False

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """A config from its JSON form (``to_json``), re-validated; ValueError names the key."""
        hints = run_fields()
        unknown = sorted(set(data) - set(hints))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}")
        values = {k: coerce(k, v, hints[k]) for k, v in data.items()}
        cfg = cls(**values)
        validate(cfg)
        return cfg


RUN_GROUPS = ("planner_options", "method_options")
# what a run is (chosen by the command's own arguments, never by --set)
IDENTITY = {"sequence": "--sequence", "backend": "--backend", "method": "--method",
            "profile": "--profile"}
# chosen by a command's own flag, which a --set value would be silently overridden by
FLAG_KEYS = {"seed": "--seed (--seeds in a launch script)"}


# ``--set hnet_arch=NAME`` with method ``hnet``: the hypernetwork that generates the model.
# Each variant is also a method of its own (its options differ), which is what a run records.
HNET_ARCHS = {"full": "hnet", "chunked": "chunked_hnet", "lowrank": "lowrank_hnet",
              "mip": "mip_hnet", "interval": "interval_hnet", "recurrent": "recurrent_hnet"}


def select_arch(method: str, items: list[str] | None) -> tuple[str, list[str]]:
    """``hnet_arch=NAME`` taken out of ``--set`` ``items``: (the method it names, the other
    items). Without it, ``(method, items)``; a ValueError names a bad name or method."""
    items = list(items or [])
    archs = [i for i in items if i.partition("=")[0].strip() == "hnet_arch"]
    if not archs:
        return method, items
    name = archs[-1].partition("=")[2].strip()
    if name not in HNET_ARCHS:
        raise ValueError(f"hnet_arch={name!r}: unknown; choose one of {sorted(HNET_ARCHS)}")
    if method not in ("hnet", HNET_ARCHS[name]):
        raise ValueError(f"hnet_arch={name}: an option of method 'hnet' only, not {method!r}")
    return HNET_ARCHS[name], [i for i in items if i not in archs]


def run_fields() -> dict[str, Any]:
    """RunConfig's field names -> types."""
    return typing.get_type_hints(RunConfig)


# --- option homes ---------------------------------------------------------------------------
def method_fields(method: str) -> dict[str, Any]:
    """The options ``method`` takes -> their types."""
    return typing.get_type_hints(learner_class(method).options_class(method))


def planner_fields(planner: str) -> dict[str, Any]:
    """The options planner ``planner`` takes -> their types."""
    return typing.get_type_hints(planner_config_class(planner))


def planner_config_class(planner: str) -> type:
    if planner not in PLANNERS:
        raise ValueError(f"unknown planner {planner!r}; valid: {sorted(PLANNERS)}")
    return PLANNERS[planner]


def method_defaults(method: str) -> dict[str, Any]:
    return dataclasses.asdict(learner_class(method).options_class(method)())


def planner_defaults(planner: str) -> dict[str, Any]:
    return dataclasses.asdict(planner_config_class(planner)())


def validate(cfg: RunConfig) -> None:
    """ValueError naming the first bad value: the method's and the planner's options are
    rebuilt through their own dataclasses, which check them."""
    cls = learner_class(cfg.method)
    opts_cls = cls.options_class(cfg.method)
    _build(opts_cls, cfg.method_options, f"method {cfg.method!r}")
    if cls.uses_planner:
        _build(planner_config_class(cfg.planner), cfg.planner_options,
               f"planner {cfg.planner!r}")
    elif cfg.planner_options:
        raise ValueError(f"method {cfg.method!r} does not plan; planner options "
                         f"{sorted(cfg.planner_options)} do not apply")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise ValueError(f"seed must lie in [0, {MAX_SEED}], got {cfg.seed}")
    if cfg.clip_states and getattr(cls, "dynamics_class", None) is not ContinualDynamics:
        raise ValueError(f"clip_states: method {cfg.method!r} has no ContinualDynamics model "
                         "whose predictions it could clip")
    if cfg.absolute_inputs and getattr(cls, "dynamics_class", None) is not ContinualDynamics:
        raise ValueError(f"absolute_inputs: method {cfg.method!r} has no ContinualDynamics "
                         "model whose inputs it could choose")
    for name in ("init_random_steps", "mpc_steps", "train_iters", "num_tasks", "buffer_size",
                 "eval_every", "checkpoint_every"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    for name in ("retrain_every", "batch_size", "episode_steps", "heldout_size", "horizon",
                 "eval_episodes", "curve_episodes", "infer_window", "infer_every",
                 "detect_patience"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    for name in ("detect_margin", "infer_change"):
        if not math.isfinite(getattr(cfg, name)):
            raise ValueError(f"{name} must be finite, got {getattr(cfg, name)}")
    if not 0.0 < cfg.detect_quantile <= 1.0:
        raise ValueError(f"detect_quantile must lie in (0, 1], got {cfg.detect_quantile}")
    if not cfg.detect_margin > 0.0:
        raise ValueError(f"detect_margin must be > 0, got {cfg.detect_margin}")
    if (cfg.task_boundaries == "inferred" or cfg.task_free_eval) and not cls.infers_tasks:
        key = ("task_boundaries='inferred'" if cfg.task_boundaries == "inferred"
               else "task_free_eval=true")
        raise ValueError(f"{key}: method {cfg.method!r} cannot infer its task; the "
                         "model-based methods can")
    if any(t < 0 for t in cfg.tasks):
        raise ValueError(f"tasks must be task indices >= 0, got {cfg.tasks}")
    if cfg.tasks and cfg.num_tasks not in (0, len(cfg.tasks)):
        raise ValueError(f"num_tasks={cfg.num_tasks} but tasks names {len(cfg.tasks)} "
                         f"({cfg.tasks}); set one of them")
    if any(d < 0 for d in cfg.infer_dims) or len(set(cfg.infer_dims)) < len(cfg.infer_dims):
        raise ValueError(f"infer_dims must be distinct state dims >= 0, got {cfg.infer_dims}")
    if cfg.infer_dims and not (cfg.task_free_eval or cfg.task_boundaries == "inferred"):
        raise ValueError("infer_dims selects the transitions task inference scores: set "
                         "task_free_eval=true or task_boundaries=inferred too")
    if not cfg.infer_change > 0.0:
        raise ValueError(f"infer_change must be > 0, got {cfg.infer_change}")
    if not 0.0 <= cfg.heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must lie in [0, 1), got {cfg.heldout_fraction}")
    if cfg.task_boundaries == "inferred" and cfg.heldout_fraction == 0.0:
        raise ValueError("task_boundaries='inferred' calibrates each task on its held-out "
                         "transitions: heldout_fraction must be > 0")
    if not cfg.hidden or any(h < 1 for h in cfg.hidden):
        raise ValueError(f"hidden must be positive widths, got {cfg.hidden}")
    resolve_device(cfg.device)  # a device this machine has, or a ValueError naming it


def _build(cls: type, options: Mapping[str, Any], owner: str) -> Any:
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"{owner}: unknown option(s) {unknown}; valid: {sorted(valid)}")
    try:
        return cls(**options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{owner}: {err}") from None


# --- resolution -----------------------------------------------------------------------------
def from_sequence(seq: Any, profile: str, method: str = "hnet", *,
                  sets: Mapping[str, Any] | None = None, **values: Any) -> RunConfig:
    """The config of ``method`` on a task sequence under ``profile``.

    ``values``: run keys or options of the method or planner, as typed values (a programmatic
    ``--set``); ``sets``: the same, e.g. parsed from ``--set`` strings by :func:`parse_set`.
    """
    learner_class(method)  # unknown method: ValueError listing the known ones
    table = presets.resolve(seq.family, profile)
    run: dict[str, Any] = {"sequence": seq.family, "backend": seq.backend, "method": method,
                           "profile": profile, "episode_steps": seq.episode_steps}
    run.update(dataclasses.asdict(seq.schedule))
    run.update(table.get("run", {}))
    run.update(table.get("model", {}))
    planner_table = dict(table.get("planner", {}))
    run["planner"] = planner_table.pop("name", "cem")
    if "horizon" in planner_table:
        run["horizon"] = planner_table.pop("horizon")
    per_planner = {k: planner_table.pop(k) for k in list(planner_table)
                   if isinstance(planner_table[k], dict)}
    method_table = dict(table.get("methods", {}).get(method, {}))

    overrides = {**(sets or {}), **values}
    if "tasks" in overrides and "num_tasks" not in overrides:
        run["num_tasks"] = 0  # the tasks named replace the profile's count of them
    # the planner's name first: it decides which options the other keys may name
    if "planner" in overrides:
        run["planner"] = overrides["planner"]
    uses_planner = learner_class(method).uses_planner
    for key in PLANNING_KEYS:  # as the planner's options are (route)
        if key in overrides and not uses_planner:
            raise ValueError(f"{key}: method {method!r} does not plan")
    planner = run["planner"]
    planner_options: dict[str, Any] = {}
    if uses_planner:
        fields = planner_fields(planner)
        planner_options = planner_defaults(planner)
        planner_options.update({k: v for k, v in planner_table.items() if k in fields})
        planner_options.update(per_planner.get(planner, {}))
    method_options = method_defaults(method)
    method_options.update(method_table)
    for key, value in overrides.items():
        home, name = route(key, method, planner, uses_planner)
        if home == "run":
            run[name] = value
        elif home == "method":
            method_options[name] = value
        else:
            planner_options[name] = value
    run["method_options"] = method_options
    run["planner_options"] = planner_options
    cfg = RunConfig.from_dict(run)
    check_sequence(cfg, seq)
    return cfg


def check_sequence(cfg: RunConfig, seq: Any) -> None:
    """ValueError naming the first value of ``cfg`` that the task sequence cannot take (what
    :func:`validate` cannot check without it)."""
    if any(d >= seq.observation_dim for d in cfg.infer_dims):
        raise ValueError(f"infer_dims {cfg.infer_dims}: the {seq.family} state has dims "
                         f"0..{seq.observation_dim - 1}")
    if cfg.num_tasks > len(seq.tasks):
        raise ValueError(f"num_tasks must lie in [0, {len(seq.tasks)}] (the {seq.family} "
                         f"sequence has {len(seq.tasks)} tasks), got {cfg.num_tasks}")
    if any(t >= len(seq.tasks) for t in cfg.tasks):
        raise ValueError(f"tasks {cfg.tasks}: the {seq.family} sequence has tasks "
                         f"0..{len(seq.tasks) - 1}")


def select_tasks(cfg: RunConfig, seq: Any) -> Any:
    """The run's task sequence: ``seq`` with ``cfg.tasks`` in that order, or its first
    ``cfg.num_tasks`` (every task with 0); ValueError as :func:`check_sequence`."""
    check_sequence(cfg, seq)
    order = list(cfg.tasks) if cfg.tasks else list(range(cfg.num_tasks or len(seq.tasks)))
    if order == list(range(len(seq.tasks))):
        return seq
    return dataclasses.replace(seq, tasks=tuple(seq.tasks[i] for i in order))


def route(key: str, method: str, planner: str, uses_planner: bool) -> tuple[str, str]:
    """Which home ``key`` belongs to: ("run" | "method" | "planner", field name)."""
    if key in IDENTITY:
        raise ValueError(f"--set {key}: choose it with {IDENTITY[key]}, not --set")
    runf = set(run_fields()) - set(RUN_GROUPS) - set(IDENTITY)
    methodf = set(method_fields(method))
    plannerf = set(planner_fields(planner)) if uses_planner else set()
    home, _, name = key.partition(".")
    if name:
        fields = {"method": methodf, "planner": plannerf}.get(home)
        if fields is None:
            raise ValueError(f"--set {key}: unknown home {home!r}; use method.KEY or "
                             "planner.KEY")
        if name not in fields:
            owner = f"method {method!r}" if home == "method" else f"planner {planner!r}"
            if home == "planner" and not uses_planner:
                raise ValueError(f"--set {key}: method {method!r} does not plan")
            raise ValueError(f"--set {key}: not an option of {owner}; valid: {sorted(fields)}")
        return home, name
    if key in runf:
        return "run", key
    if key in methodf:
        return "method", key
    if key in plannerf:
        return "planner", key
    others = sorted(m for m in all_methods() if key in method_fields(m))
    where = f" (an option of {', '.join(others)})" if others else ""
    planner_part = (f"; planner {planner!r} options: {sorted(plannerf)}" if uses_planner
                    else f"; method {method!r} does not plan")
    raise ValueError(f"--set {key}: not a key of this run{where}; method {method!r} options: "
                     f"{sorted(methodf)}{planner_part}; run keys: {sorted(runf)}")


def profile_planner(family: str, profile: str) -> str:
    """The planner a family's profile plans with unless told otherwise (its presets')."""
    return presets.resolve(family, profile).get("planner", {}).get("name", "cem")


def parse_set(items: list[str], method: str, planner: str | None = None) -> dict[str, Any]:
    """``["key=value", ...]`` -> typed values for ``method`` (and the chosen planner: a
    ``planner=`` item, else ``planner``, else CEM; pass the profile's,
    :func:`profile_planner`); a bad key or value is a ValueError naming it."""
    raw: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        if key.strip() in FLAG_KEYS:
            raise ValueError(f"--set {key.strip()}: choose it with {FLAG_KEYS[key.strip()]}, "
                             "not --set")
        raw[key.strip()] = value.strip()
    planner = raw.get("planner", planner or "cem")
    uses_planner = learner_class(method).uses_planner
    if uses_planner:
        planner_config_class(planner)
    out: dict[str, Any] = {}
    for key, text in raw.items():
        home, name = route(key, method, planner, uses_planner)
        hints = {"run": run_fields, "method": lambda: method_fields(method),
                 "planner": lambda: planner_fields(planner)}[home]()
        try:
            out[key] = coerce(name, text, hints[name], from_text=True)
        except ValueError as err:
            raise ValueError(f"--set {key}={text!r}: {err}") from None
    return out


# --- typed values ---------------------------------------------------------------------------
def coerce(key: str, value: Any, tp: Any, from_text: bool = False) -> Any:
    """``value`` as type ``tp`` (from JSON, TOML or, with ``from_text``, a --set string)."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (from_text and str(value).lower() in ("none", "null")):
            return None
        return coerce(key, value, args[0], from_text)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ValueError(f"{key} must be one of {list(choices)}, got {value!r}")
        return value
    if origin is tuple:
        if from_text and isinstance(value, str):
            value = [v for v in value.strip("()[]").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list of integers, got {value!r}")
        return tuple(_int(key, v) for v in value)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{key} must be a table, got {value!r}")
        return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if from_text and str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        return _int(key, value)
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"{key} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return value
    return value


def _int(key: str, value: Any) -> int:
    try:
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError
        return int(float(value))
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be an integer, got {value!r}") from None


def fill_defaults(old: dict[str, Any]) -> dict[str, Any]:
    """A stored config (``RunConfig.to_json``) with the keys it predates filled by their
    defaults: a run written before an option existed ran as that option's default, so it
    compares equal to today's config of the same run and continues."""
    filled = {**json.loads(json.dumps(dataclasses.asdict(RunConfig()))), **old}
    for group, defaults in (("method_options", method_defaults),
                            ("planner_options", planner_defaults)):
        name = old.get("method" if group == "method_options" else "planner")
        stored = old.get(group)
        if not isinstance(stored, dict) or not isinstance(name, str) or not stored:
            continue
        try:
            base = json.loads(json.dumps(defaults(name)))
        except ValueError:  # a method or planner this version no longer has
            continue
        filled[group] = {**base, **stored}
    return filled
