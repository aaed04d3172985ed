"""Several plans in lockstep: each iteration's populations of all of them scored in one call.

A plan step on a CPU is dominated by a fixed cost per objective call (a short rollout loop of
small matmuls), not by the population size, so planning for E states at once through one call
per iteration costs little more than planning for one. Every plan keeps its own optimiser: its
own warm start, kept elites and noise generator, so each one draws and decides exactly what it
would alone; only the objective sees the populations side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from hypercrl.plan.base import PlanSteps

LockstepObjective = Callable[[Tensor, list[int], list[int]], Tensor]
"""``(actions, owners, sizes) -> returns [N]``: action sequences ``[N, H, A]`` of several plans,
one block of rows per plan, in order: block ``k`` holds ``sizes[k]`` rows of plan
``owners[k]``."""


@torch.no_grad()
def plan_together(plans: Sequence[PlanSteps], objective: LockstepObjective) -> list[Tensor]:
    """Drive ``plans`` (of distinct optimisers) to their ends together; their plans, in order.

    Each round concatenates the population every unfinished plan yields (in plan order), calls
    ``objective`` once on them, and sends each plan the slice of returns of its own rows. Plans
    may yield populations of different sizes and finish after different numbers of rounds.
    """
    results: list[Tensor | None] = [None] * len(plans)
    waiting = {i: next(steps) for i, steps in enumerate(plans)}  # plan -> population to score
    while waiting:
        owners = list(waiting)
        populations = [waiting[i] for i in owners]
        sizes = [p.shape[0] for p in populations]
        returns = objective(torch.cat(populations), owners, sizes).split(sizes)
        waiting = {}
        for i, plan_returns in zip(owners, returns, strict=True):
            try:
                waiting[i] = plans[i].send(plan_returns)
            except StopIteration as done:
                results[i] = done.value
    return results


def reset_seeded(optimizers: Sequence, seeds: Sequence[int]) -> None:
    """Start one plan per optimiser afresh (no warm start), optimiser ``e``'s noise generator
    seeded with ``seeds[e]``: evaluation episodes that plan together, each as it would alone."""
    if len(seeds) != len(optimizers):
        raise ValueError(f"{len(seeds)} seeds for {len(optimizers)} episodes")
    for optimizer, seed in zip(optimizers, seeds, strict=True):
        optimizer.generator.manual_seed(seed)
        optimizer.reset()
