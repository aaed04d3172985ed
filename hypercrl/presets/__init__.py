"""Learner presets: the original HyperCRL's learner settings per task family, as TOML data.

``defaults.toml`` holds what applies to every family (and the generic run profiles);
``<family>.toml`` (the task sequence's ``family``) adds the original's per-environment
numbers: target-network sizes, hypernetwork sizes and beta, CEM settings, coreset size, and
the family's reduced profiles. A family without a file runs on the defaults alone. Tables:

- ``[run]``: run-level keys (schedule, buffers, ...), over the task sequence's schedule;
- ``[model]``: ContinualDynamics keys (``hidden``, ``probabilistic``, ``normalize_targets``,
  ``absolute_inputs``);
- ``[planner]``: ``name``, ``horizon`` and options shared by every planner that has them
  (``population``, ...); ``[planner.<name>]``: options of that planner only;
- ``[methods.<method>]``: options of that method (its Options dataclass fields);
- ``[profiles.<profile>]``: the same tables again, applied on top for that profile.
"""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from typing import Any

PROFILES = ("paper", "quick", "smoke")


def read(name: str) -> dict[str, Any]:
    """The preset file ``<name>.toml`` shipped with hypercrl ({} when there is none)."""
    path = resources.files(__package__).joinpath(f"{name}.toml")
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"preset {name}.toml: {err}") from None


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` deep-merged onto a copy of ``base`` (tables merge, values replace)."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve(family: str, profile: str) -> dict[str, Any]:
    """The preset tables for ``family`` under ``profile``: defaults, then the family's file,
    then each file's ``[profiles.<profile>]``; the ``profiles`` table itself is dropped."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {list(PROFILES)}")
    files = [read("defaults"), read(family)]
    out: dict[str, Any] = {}
    for data in files:
        out = merge(out, {k: v for k, v in data.items() if k != "profiles"})
    for data in files:
        out = merge(out, data.get("profiles", {}).get(profile, {}))
    return out
