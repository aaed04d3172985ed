"""Seeds derived from a run's seed: one independent stream per purpose."""

from __future__ import annotations

import numpy as np


def seed_of(seed: int, *parts: int) -> int:
    """A 31-bit seed derived from the run seed and integer parts (task, episode, ...)."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1)[0] & 0x7FFFFFFF)
