"""The MuJoCo backend (official ``mujoco`` bindings >= 3.2): scenes built with ``MjSpec``."""

from envs.mujoco.backend import MujocoBackend

__all__ = ["MujocoBackend"]
