"""Gymnasium environments for HyperCRL task families (push, door, HalfCheetah body).

This package never imports ``hypercrl``: any Gymnasium user can use it alone.
Importing it registers ``HyperCRL/Push-v0``, ``HyperCRL/Door-v0`` and
``HyperCRL/HalfCheetahBody-v0``; ``envs.sequence(family, backend=...)`` returns a
:class:`~envs.sequences.TaskSequence` with everything a learner needs, as data.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from gymnasium.envs.registration import register, registry  # noqa: E402

from envs.sequences import FAMILIES, Task, TaskSequence, sequence  # noqa: E402

# id -> (entry point, episode length: Gymnasium's TimeLimit and env.spec.max_episode_steps)
_ENV_IDS = {
    "HyperCRL/Push-v0": ("envs.push:make_env", 100),
    "HyperCRL/Door-v0": ("envs.door:make_env", 200),
    "HyperCRL/HalfCheetahBody-v0": ("envs.cheetah:make_env", 1000),
}
for _env_id, (_entry, _steps) in _ENV_IDS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry, max_episode_steps=_steps)

__all__ = ["FAMILIES", "Task", "TaskSequence", "sequence"]
