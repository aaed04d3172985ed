"""The PyBullet backend: the push and door scenes in Bullet, one DIRECT client per env."""

from envs.pybullet.backend import PybulletBackend

__all__ = ["PybulletBackend"]
