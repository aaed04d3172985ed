"""HalfCheetah body variants: gymnasium's HalfCheetah-v5 with geom-scaled XML (reference §5.3).

Five tasks, in order: ``normal``, ``big_torso``, ``big_thigh``, ``big_leg``, ``big_foot``.
Each scales the ``size`` (radius and half-length) of its listed geoms by 1.25; positions stay,
and the total mass stays 14 kg, so only the geometry and the mass distribution change.

Observation, 18-D float64: ``[vx, rootz, rooty, 6 joint angles (rad), 9 qvel]`` where
``vx = (x_after - x_before) / dt`` (m/s) is the torso's mean forward velocity over the last
control step (0 right after a reset, as in the original). Action, 6-D in [-1, 1]: joint torques
(scaled by the actuator gears). Reward ``vx - 0.1 * ||u||^2``, computed by :func:`reward`,
the same function the planner uses. dt = 0.05 s (timestep 0.01, frame skip 5); episodes end by
truncation after 1000 steps only.

Made with ``gymnasium.make("HyperCRL/HalfCheetahBody-v0", task=<index or name>,
backend="mujoco", render_mode=None | "rgb_array")``; ``sequence("mujoco")`` gives the
:class:`~envs.sequences.TaskSequence`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.spaces import Box
from gymnasium.wrappers import TimeLimit

from envs.sequences import Schedule, Task, TaskSequence

ENV_ID = "HyperCRL/HalfCheetahBody-v0"
FAMILY = "halfcheetah"
BACKENDS = ("mujoco",)

SIZE_SCALE = 1.25
# Task name -> geoms whose ``size`` is scaled, in the original's order (CHEETAH_ENVS).
# The torso geom is a ``fromto`` capsule whose size holds only the radius, so only that grows.
TASK_GEOMS: dict[str, tuple[str, ...]] = {
    "normal": (),
    "big_torso": ("torso",),
    "big_thigh": ("bthigh", "fthigh"),
    "big_leg": ("bshin", "fshin"),
    "big_foot": ("bfoot", "ffoot"),
}
TASK_NAMES: tuple[str, ...] = tuple(TASK_GEOMS)

TOTAL_MASS = 14.0  # kg, the base XML's settotalmass
CTRL_COST_WEIGHT = 0.1
FRAME_SKIP = 5
RESET_NOISE_SCALE = 0.1
EPISODE_STEPS = 1000
OBS_DIM = 18
ACTION_DIM = 6
RENDER_SIZE = 256
RENDER_CAMERA = "track"  # the base XML's side camera, which follows the centre of mass

# reference §2.4: vx is predicted outright, rooty (the torso pitch) as an angle, the rest as deltas
STATE_KINDS: tuple[str, ...] = ("absolute", "delta", "angle") + ("delta",) * (OBS_DIM - 3)


def reward(state: Any, action: Any, next_state: Any) -> Any:
    """``vx' - 0.1 * ||u||^2`` for batched transitions, numpy arrays or torch tensors alike.

    Args:
        state: ``[..., 18]`` (unused; part of the common reward signature).
        action: ``[..., 6]`` actions as given to the env (unclipped).
        next_state: ``[..., 18]``; dim 0 is the forward velocity vx in m/s.

    Returns:
        ``[...]`` rewards.
    """
    del state
    return next_state[..., 0] - CTRL_COST_WEIGHT * (action**2).sum(-1)


def _base_xml_path() -> Path:
    """gymnasium's own half_cheetah.xml, the model HalfCheetah-v5 loads by default."""
    import gymnasium.envs.mujoco as gym_mujoco

    return Path(gym_mujoco.__file__).parent / "assets" / "half_cheetah.xml"


@functools.cache
def task_xml(geoms: tuple[str, ...], size_scale: float = SIZE_SCALE) -> str:
    """The base cheetah XML with the ``size`` of ``geoms`` multiplied by ``size_scale``.

    ``settotalmass`` is replaced by an equivalent uniform geom density (masses and inertias both
    scale linearly with density), because MuJoCo deprecates that compiler attribute; the total
    mass stays ``TOTAL_MASS`` kg.
    """
    root = ET.parse(_base_xml_path()).getroot()
    for name in geoms:
        geom = root.find(f".//geom[@name='{name}']")
        if geom is None:
            raise ValueError(f"no geom named {name!r} in the cheetah XML")
        sizes = [float(v) * size_scale for v in geom.attrib["size"].split()]
        geom.attrib["size"] = " ".join(f"{v:.17g}" for v in sizes)

    compiler = root.find("compiler")
    if compiler is not None:
        compiler.attrib.pop("settotalmass", None)
    default_geom = root.find("default/geom")
    if default_geom is None:
        raise ValueError("the cheetah XML has no <default><geom> to carry the density")
    default_geom.attrib.pop("density", None)
    # default density is 1000 kg/m^3
    unscaled = mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode"))
    density = 1000.0 * TOTAL_MASS / float(unscaled.body_mass.sum())
    default_geom.attrib["density"] = f"{density:.17g}"
    return ET.tostring(root, encoding="unicode")


def _task_xml_file(name: str) -> str:
    """Path of the task's XML, written once to a content-addressed file in the temp dir.

    HalfCheetah-v5 takes ``xml_file`` as a path. The file name carries the content hash, and it
    is written by atomic rename, so concurrent processes may share the directory safely.
    """
    text = task_xml(TASK_GEOMS[name])
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / "hypercrl-envs"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"half_cheetah_{name}_{digest}.xml"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=cache, suffix=".xml")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return str(path)


def task_index(task: int | str) -> int:
    """Index of ``task`` given as an index (0..4) or a name such as ``"big_thigh"``."""
    if isinstance(task, str):
        key = task.strip().lower().replace(" ", "_").replace("-", "_")
        if key in TASK_GEOMS:
            return TASK_NAMES.index(key)
    elif isinstance(task, (int, np.integer)) and not isinstance(task, bool):
        if 0 <= int(task) < len(TASK_NAMES):
            return int(task)
    raise ValueError(
        f"unknown cheetah task {task!r}; valid: indices 0..{len(TASK_NAMES) - 1} or names "
        f"{list(TASK_NAMES)}"
    )


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} for {FAMILY}; valid: {list(BACKENDS)}")


class HalfCheetahBodyEnv(HalfCheetahEnv):
    """HalfCheetah-v5 on a geom-scaled body, with the 18-D observation and the shared reward.

    ``model`` and ``data`` are the raw ``MjModel`` / ``MjData``; ``task_name`` and
    ``scaled_geoms`` say which body this is. No time limit here: :func:`make_env` adds it.
    """

    metadata = {"render_modes": ["rgb_array", "depth_array"], "render_fps": 20}

    def __init__(
        self,
        task: int | str = 0,
        render_mode: str | None = None,
        width: int = RENDER_SIZE,
        height: int = RENDER_SIZE,
        camera_name: str = RENDER_CAMERA,
        reset_noise_scale: float = RESET_NOISE_SCALE,
    ) -> None:
        index = task_index(task)
        self.task_index = index
        self.task_name = TASK_NAMES[index]
        self.scaled_geoms = TASK_GEOMS[self.task_name]
        self._x_velocity = 0.0
        super().__init__(
            xml_file=_task_xml_file(self.task_name),
            frame_skip=FRAME_SKIP,
            forward_reward_weight=1.0,
            ctrl_cost_weight=CTRL_COST_WEIGHT,
            reset_noise_scale=reset_noise_scale,
            exclude_current_positions_from_observation=True,
            render_mode=render_mode,
            width=width,
            height=height,
            camera_name=camera_name,
        )
        # pickling and copying rebuild from these arguments, not from v5's
        utils.EzPickle.__init__(
            self, index, render_mode, width, height, camera_name, reset_noise_scale
        )
        self.metadata = {
            "render_modes": ["rgb_array", "depth_array"],
            "render_fps": int(np.round(1.0 / self.dt)),
        }
        self.observation_space = Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float64)
        self.observation_structure = {"x_velocity": 1, "skipped_qpos": 1, "qpos": 8, "qvel": 9}
        self._last_obs = self._get_obs()

    def _get_obs(self) -> np.ndarray:
        """``[18]``: vx (m/s), qpos[1:] (m, rad), qvel (m/s, rad/s)."""
        return np.concatenate(([self._x_velocity], self.data.qpos[1:], self.data.qvel))

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Advance one control step (5 physics steps, 0.05 s) under ``action`` ``[6]``."""
        action = np.asarray(action, dtype=np.float64)
        x_before = float(self.data.qpos[0])
        self.do_simulation(action, self.frame_skip)
        x_after = float(self.data.qpos[0])
        self._x_velocity = (x_after - x_before) / self.dt
        obs = self._get_obs()
        r = float(reward(self._last_obs, action, obs))
        ctrl = CTRL_COST_WEIGHT * float(np.sum(action**2))
        info = {
            "x_position": x_after,
            "x_velocity": self._x_velocity,
            "reward_forward": self._x_velocity,
            "reward_ctrl": -ctrl,
            "task": self.task_name,
        }
        self._last_obs = obs
        # the cheetah never terminates; the TimeLimit wrapper truncates
        return obs, r, False, False, info

    def reset_model(self) -> np.ndarray:
        """v5's noisy reset (qpos + U(+-0.1), qvel + 0.1 N(0, 1)); vx is 0 before any step."""
        self._x_velocity = 0.0
        self._last_obs = super().reset_model()
        return self._last_obs

    def _get_reset_info(self) -> dict[str, Any]:
        return {"x_position": float(self.data.qpos[0]), "x_velocity": 0.0, "task": self.task_name}


def make_env(
    task: int | str = 0,
    backend: str = "mujoco",
    render_mode: str | None = None,
    max_episode_steps: int = EPISODE_STEPS,
    **kwargs: Any,
) -> gymnasium.Env:
    """The cheetah body env ``task`` (index or name) in a 1000-step ``TimeLimit``.

    ``kwargs`` go to :class:`HalfCheetahBodyEnv` (``width``, ``height``, ``camera_name``,
    ``reset_noise_scale``). Raises ``ValueError`` for an unknown task, backend or render mode.
    """
    _check_backend(backend)
    modes = HalfCheetahBodyEnv.metadata["render_modes"]
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"unsupported render_mode {render_mode!r}; valid: None or {modes}")
    env = HalfCheetahBodyEnv(task, render_mode=render_mode, **kwargs)
    return TimeLimit(env, max_episode_steps=max_episode_steps)


def sequence(backend: str = "mujoco") -> TaskSequence:
    """The five cheetah bodies in order, with the original's schedule and settings as data."""
    _check_backend(backend)
    tasks = tuple(
        Task(
            family=FAMILY,
            index=i,
            name=name,
            params={"scaled_geoms": TASK_GEOMS[name], "size_scale": SIZE_SCALE},
            backend=backend,
            env_id=ENV_ID,
            reward=reward,
        )
        for i, name in enumerate(TASK_NAMES)
    )
    return TaskSequence(
        family=FAMILY,
        backend=backend,
        tasks=tasks,
        observation_dim=OBS_DIM,
        action_dim=ACTION_DIM,
        action_low=-np.ones(ACTION_DIM, dtype=np.float32),
        action_high=np.ones(ACTION_DIM, dtype=np.float32),
        state_kinds=STATE_KINDS,
        episode_steps=EPISODE_STEPS,
        # reference §1.3 and §7.1, half_cheetah_body column
        schedule=Schedule(
            init_random_steps=10_000, mpc_steps=100_000, retrain_every=1_000, train_iters=2_000,
            batch_size=100, eval_every=5_000, curve_episodes=1,
        ),
        extras={
            # the original's default_arg_half_cheetah runs only the first 3 of these bodies
            "original_num_tasks": 3,
            "dt": FRAME_SKIP * 0.01,
        },
    )
