"""A task family's model and planner settings for the benches, read where they live.

The benches time the original's settings without naming any environment: the task sequence
(``envs``) gives the state kinds and the action size, and hypercrl's presets under the
``paper`` profile give the network sizes, the planner's numbers and each method's options
(reference §2, §4.1). ``--families`` of ``hypercrl bench plan`` and ``bench train`` takes the
families' names as ``hypercrl run --sequence`` does.
"""

from __future__ import annotations

from typing import Any

from hypercrl.model.spec import StateSpec

PROFILE = "paper"  # the benches time the original's numbers


def known() -> list[str]:
    """The task families ``envs`` defines, in its order."""
    from envs.sequences import FAMILIES

    return list(FAMILIES)


def parse(text: str, flag: str = "--families") -> list[str]:
    """A comma or space separated list of families; an unknown one is a ValueError naming it."""
    names = [n for n in text.replace(",", " ").split() if n]
    valid = known()
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"{flag}: unknown task family {unknown}; valid: {valid}")
    if not names:
        raise ValueError(f"{flag}: no family given; valid: {valid}")
    return names


def setting(family: str, method: str = "hnet", backend: str = "mujoco") -> dict[str, Any]:
    """``family``'s model shape, CEM settings and ``method``'s options under ``paper``.

    Keys: ``family``, ``state_spec`` (the sequence's state kinds), ``action_dim``,
    ``in_dim`` and ``out_dim`` (the target network's), ``hidden``, ``probabilistic``, the
    planner's ``K`` (population), ``H`` (horizon), ``elites``, ``init_std``, ``iterations``,
    and ``method_options``.
    """
    import envs
    from hypercrl.config import from_sequence

    seq = envs.sequence(family, backend=backend)
    cfg = from_sequence(seq, PROFILE, method)
    kinds = tuple(seq.state_kinds)
    planner = cfg.planner_options
    return {
        "family": family,
        "state_spec": kinds,
        "action_dim": seq.action_dim,
        "in_dim": StateSpec(kinds).feature_dim + seq.action_dim,
        "out_dim": len(kinds),
        "hidden": tuple(cfg.hidden),
        "probabilistic": cfg.probabilistic,
        "K": planner.get("population"),
        "H": cfg.horizon,
        "elites": planner.get("elites"),
        "init_std": planner.get("init_std"),
        "iterations": planner.get("iterations"),
        "method_options": dict(cfg.method_options),
    }
