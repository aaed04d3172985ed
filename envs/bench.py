"""``hypercrl bench env``: environment throughput, printed as JSON.

For each family (push, door, and halfcheetah when ``envs.cheetah`` exists) and backend:

- ``env_steps_per_s``: ``env.step`` with random actions (10 Hz control steps per second);
- ``env_steps_per_s_render``: the same with ``env.render()`` after every step (256 x 256);
- ``raw_steps_per_s``: the same model's physics alone per control step (k physics steps) from
  the very states and controls of the env loop, timed interleaved with it: MuJoCo's
  ``mj_step(m, d, nstep=k)``; PyBullet's ``raw_step()`` (``stepSimulation`` x k with the
  motor targets the env set, without the joint-spring torques the env sets per physics step);
- ``overhead_ratio``: raw / env throughput, i.e. what one env step costs in units of the
  physics inside it (the aim is <= 1.3);
- ``render_fps``: ``env.render()`` alone.

Usage: ``hypercrl bench env [--backend mujoco|pybullet|all] [--steps N] [--family F ...]``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import time
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

FAMILY_ENVS = {
    "push": ("HyperCRL/Push-v0", "envs.push"),
    "door": ("HyperCRL/Door-v0", "envs.door"),
    "halfcheetah": ("HyperCRL/HalfCheetahBody-v0", "envs.cheetah"),
}


def _physics(env: gym.Env, backend: str) -> tuple[Any, Any, int] | None:
    """(MjModel, MjData, physics steps per env step) of a MuJoCo-backed env, else None."""
    inner = env.unwrapped
    if backend != "mujoco":
        return None
    sim = getattr(inner, "sim", None)
    if sim is not None and hasattr(sim, "model"):
        return sim.model, sim.data, sim.physics_steps_per_control()
    if hasattr(inner, "model") and hasattr(inner, "data"):
        return inner.model, inner.data, int(getattr(inner, "frame_skip", 1))
    return None


PYBULLET_HOOKS = ("save_state", "raw_step", "restore_state", "remove_state")


def _pybullet_sim(env: gym.Env, backend: str) -> Any | None:
    """The PybulletBackend of a PyBullet-backed env, if it has the benchmark hooks, else None."""
    if backend != "pybullet":
        return None
    sim = getattr(env.unwrapped, "sim", None)
    if sim is None or not all(hasattr(sim, hook) for hook in PYBULLET_HOOKS):
        return None
    return sim


def _make(env_id: str, backend: str, render: bool) -> gym.Env:
    kwargs: dict[str, Any] = {"task": 0, "render_mode": "rgb_array" if render else None}
    if env_id != FAMILY_ENVS["halfcheetah"][0] or backend != "mujoco":
        kwargs["backend"] = backend
    try:
        return gym.make(env_id, **kwargs)
    except TypeError:  # an entry point without the backend argument (MuJoCo only)
        kwargs.pop("backend", None)
        return gym.make(env_id, **kwargs)


def _env_loop(env: gym.Env, steps: int, render: bool, seed: int = 0) -> float:
    """Seconds for ``steps`` env steps with seeded random actions (and renders)."""
    rng = np.random.default_rng(seed)
    shape = env.action_space.shape
    low, high = env.action_space.low, env.action_space.high
    actions = rng.uniform(low, high, (steps, *shape)).astype(np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if render:
            env.render()
        if terminated or truncated:
            env.reset()
    return time.perf_counter() - start


def _interleaved(env: gym.Env, steps: int, snapshot, restore, release, raw_step,
                 seed: int = 0) -> tuple[float, float]:
    """Seconds for ``steps`` env steps and for the physics inside them, measured interleaved
    (so both see the same machine load): after each env step the physics state from before
    it is restored, with the controls the env set, and ``raw_step()`` alone is timed; then the
    state after the env step is put back so the episode goes on unchanged. ``snapshot()``
    takes a state, ``restore(state)`` puts it back, ``release(state)`` frees it."""
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    actions = rng.uniform(low, high, (steps, *env.action_space.shape)).astype(np.float32)
    env.reset(seed=seed)
    env_s = raw_s = 0.0
    for action in actions:
        before = snapshot()
        start = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        env_s += time.perf_counter() - start
        after = snapshot()
        restore(before, after)
        start = time.perf_counter()
        raw_step()
        raw_s += time.perf_counter() - start
        restore(after, None)
        release(before)
        release(after)
        if terminated or truncated:
            env.reset()
    return env_s, raw_s


def _env_and_raw(env: gym.Env, backend: str, steps: int, seed: int = 0) -> tuple[float, float]:
    """:func:`_interleaved` on MuJoCo: the raw step is ``mj_step(m, d, nstep=k)`` with the
    controls the env step set."""
    import mujoco

    model, data, nstep = _physics(env, backend)
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    size = mujoco.mj_stateSize(model, spec)

    def snapshot():
        state = np.empty(size)
        mujoco.mj_getState(model, data, state, spec)
        return state, data.ctrl.copy()

    def restore(state, controls_from):
        mujoco.mj_setState(model, data, state[0], spec)
        # the raw step runs with the controls the env step set
        data.ctrl[:] = (controls_from or state)[1]
        if controls_from is None:
            mujoco.mj_forward(model, data)

    return _interleaved(env, steps, snapshot, restore, lambda state: None,
                        lambda: mujoco.mj_step(model, data, nstep=nstep), seed)


def _env_and_raw_pybullet(env: gym.Env, steps: int, seed: int = 0) -> tuple[float, float]:
    """:func:`_interleaved` on PyBullet: the raw step is ``sim.raw_step()``
    (``stepSimulation`` x k with the motor targets the env step set)."""
    sim = _pybullet_sim(env, "pybullet")
    return _interleaved(env, steps, sim.save_state, lambda state, _: sim.restore_state(state),
                        sim.remove_state, sim.raw_step, seed)


def _render_loop(env: gym.Env, frames: int) -> float:
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(frames):
        env.render()
    return time.perf_counter() - start


def bench_family(family: str, backend: str, steps: int) -> dict[str, Any]:
    """Throughput figures of one family on one backend."""
    env_id, module = FAMILY_ENVS[family]
    if importlib.util.find_spec(module) is None:
        return {"skipped": f"{module} is not installed"}
    try:
        env = _make(env_id, backend, render=False)
    except (ValueError, ImportError) as err:
        return {"skipped": str(err)}
    _env_loop(env, min(steps, 20), render=False)  # warm-up: caches, lazy allocations
    phys = _physics(env, backend)
    bullet = _pybullet_sim(env, backend)
    nstep = None
    if phys is not None:
        env_s, raw_s = _env_and_raw(env, backend, steps)
        nstep = phys[2]
    elif bullet is not None:
        env_s, raw_s = _env_and_raw_pybullet(env, steps)
        nstep = bullet.physics_steps_per_control()
    else:
        env_s, raw_s = _env_loop(env, steps, render=False), None
    env.close()
    renv = _make(env_id, backend, render=True)
    _render_loop(renv, 3)
    render_steps = max(10, steps // 5)
    env_render_s = _env_loop(renv, render_steps, render=True)
    render_s = _render_loop(renv, render_steps)
    frame = renv.render()
    renv.close()
    out: dict[str, Any] = {
        "env_steps_per_s": steps / env_s,
        "env_steps_per_s_render": render_steps / env_render_s,
        "render_fps": render_steps / render_s,
        "render_size": list(np.asarray(frame).shape[:2]),
        "steps": steps,
    }
    if raw_s is not None:
        out["raw_steps_per_s"] = steps / raw_s
        out["overhead_ratio"] = env_s / raw_s
        out["physics_steps_per_env_step"] = nstep
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hypercrl bench env", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["mujoco", "pybullet", "all"], default="mujoco")
    parser.add_argument("--steps", type=int, default=500, help="env steps per measurement")
    parser.add_argument(
        "--family", nargs="+", choices=sorted(FAMILY_ENVS), default=list(FAMILY_ENVS)
    )
    args = parser.parse_args(argv)
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    import envs  # noqa: F401  (registers the ids)

    backends = ["mujoco", "pybullet"] if args.backend == "all" else [args.backend]
    results: dict[str, Any] = {}
    for backend in backends:
        for family in args.family:
            try:
                out = bench_family(family, backend, args.steps)
            except Exception as err:  # one broken family or backend must not hide the rest
                out = {"error": f"{type(err).__name__}: {err}"}
            results.setdefault(backend, {})[family] = out
    import mujoco

    report = {
        "bench": "env",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "mujoco": mujoco.__version__,
            "pybullet": _version("pybullet"),
            "mujoco_gl": os.environ.get("MUJOCO_GL"),
        },
        "results": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
