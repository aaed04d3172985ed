"""Continual-RL metrics: the performance matrix, forgetting, forward transfer, intervals, and
Continual World's area-under-the-curve forward transfer.

Conventions: ``R[i, j]`` is the performance on task j measured after training task i
(NaN where j > i, not yet seen). T = number of tasks; the final row is ``R[T - 1]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def performance_matrix(rows: Mapping[str, Sequence], n: int, reduce=np.mean) -> np.ndarray:
    """[n, n] matrix from {"i": [value or episode values of task 0..i]}; lists are reduced
    (the mean over episodes by default); NaN where not measured."""
    r = np.full((n, n), np.nan)
    for i, row in rows.items():
        for j, v in enumerate(row):
            r[int(i), j] = float(reduce(v)) if isinstance(v, list) else float(v)
    return r


def average_final(r: np.ndarray) -> float:
    """Mean over tasks of the final performance, mean_j R[T-1, j]."""
    return float(np.nanmean(r[-1]))


def forgetting(r: np.ndarray) -> np.ndarray:
    """Per earlier task j < T-1: R[j, j] - R[T-1, j] (positive = forgotten)."""
    t = r.shape[0]
    return np.array([r[j, j] - r[t - 1, j] for j in range(t - 1)])


def retention(r: np.ndarray) -> np.ndarray:
    """Per earlier task j < T-1: R[T-1, j] / R[j, j] (the original's "forgetting"; 1 = kept)."""
    t = r.shape[0]
    return np.array([_ratio(r[t - 1, j], r[j, j]) for j in range(t - 1)])


def forward_transfer(r: np.ndarray, r_single: np.ndarray) -> np.ndarray:
    """Per task j: R[j, j] - R_single[j, j], against a fresh model per task (``single``)."""
    return np.array([r[j, j] - r_single[j, j] for j in range(r.shape[0])])


def window_auc(curve: Sequence[Mapping], task: int, key: str = "success") -> float:
    """Continual World's AUC of ``task`` over its own training window (Wolczyk et al. 2021):
    the mean of its performance ``key`` over the evaluations made while it was being trained
    (curve rows with ``after == task``, equally spaced in env steps, so their mean is the
    normalised area). Where the task-end evaluation (``final``) falls on the same env step as
    a curve point, it stands for it. NaN when no such evaluation holds ``key``."""
    points: dict[int, float] = {}
    for row in sorted(curve, key=lambda r: bool(r.get("final"))):  # finals last: they win
        if row.get("task") == task and row.get("after") == task and key in row:
            points[int(row["env_steps"])] = float(row[key])
    return float(np.mean(list(points.values()))) if points else float("nan")


def cw_forward_transfer(auc: float, auc_reference: float) -> float:
    """Continual World's forward transfer of one task, (AUC - AUC_ref) / (1 - AUC_ref), for a
    performance in [0, 1] (a success rate) against a single-task run of the same budget; 1 is
    solved from the start, 0 no better than the reference. NaN when AUC_ref is 1."""
    return (auc - auc_reference) / (1.0 - auc_reference) if auc_reference < 1 else float("nan")


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b != 0 else float("nan")


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    level: float = 0.9,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(mean, low, high): the mean over seeds and its percentile-bootstrap interval.

    With one value the interval collapses to it. NaNs are dropped.
    """
    return bootstrap_contrast([values], [1.0], level, resamples, seed)


def bootstrap_contrast(
    groups: Sequence[Sequence[float] | np.ndarray],
    signs: Sequence[float],
    level: float = 0.9,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(value, low, high) of ``sum_k signs[k] * mean(groups[k])`` and its percentile-bootstrap
    interval, each group resampled on its own (independent samples: seeds of different runs,
    or evaluation episodes of different cells). NaNs are dropped; a group with one value
    contributes it without spread; an empty group makes it NaN."""
    rng = np.random.default_rng(seed)
    value, draws = 0.0, np.zeros(resamples)
    for group, sign in zip(groups, signs, strict=True):
        x = np.asarray(group, dtype=float)
        x = x[np.isfinite(x)]
        if x.size == 0:
            return (float("nan"),) * 3
        value += sign * x.mean()
        draws += sign * x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(draws, [tail, 1 - tail])
    return float(value), float(lo), float(hi)


def detection_summary(detections: Sequence[Mapping], tasks: int, steps_per_task: int) -> dict:
    """How well a learner not told the task found the task changes.

    ``detections``: the new tasks the learner began by itself, each ``{"task": t, "step": s}``
    (the true task running then, and the env steps into it). Over the first ``tasks`` tasks of
    ``steps_per_task`` env steps each: per change (tasks 1..tasks-1) the delay, the steps into
    the new task of the first detection in it (None: missed); every other detection is a false
    alarm, counted per 10,000 env steps.
    """
    first: dict[int, int] = {}
    false_alarms = 0
    for d in detections:
        t = int(d["task"])
        if t >= 1 and t not in first:
            first[t] = int(d["step"])
        else:
            false_alarms += 1
    delays = [first.get(t) for t in range(1, tasks)]
    steps = tasks * steps_per_task
    found = [d for d in delays if d is not None]
    return {"delays": delays, "detected": len(found), "changes": max(0, tasks - 1),
            "mean_delay": float(np.mean(found)) if found else None,
            "false_alarms": false_alarms,
            "false_alarms_per_10k_steps": 1e4 * false_alarms / steps if steps else None}
