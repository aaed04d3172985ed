"""The report's comparison of forgetting between methods, with its interval."""

import numpy as np

from hypercrl import metrics as M
from hypercrl.report import forgetting_compared


def _run(after0: list[float], after1: list[float]) -> dict:
    """A finished 2-task run: episodes on task 0 after task 0, on tasks 0 and 1 after task 1."""
    return {"tasks": ["a", "b"], "returns": {"0": [after0], "1": [after1, [0.0]]}}


def test_contrast_of_one_group_is_the_bootstrap_interval_of_its_mean():
    x = [3.0, 1.0, 4.0, 1.0, 5.0]
    assert M.bootstrap_contrast([x], [1.0]) == M.bootstrap_ci(x)
    value, lo, hi = M.bootstrap_contrast([x, [10.0, 12.0]], [1.0, -1.0])
    assert value == np.mean(x) - 11.0 and lo < value < hi
    assert np.isnan(M.bootstrap_contrast([x, []], [1.0, -1.0])[0])


def test_one_seed_each_compares_over_evaluation_episodes():
    finetune = [_run([100, 102, 98, 101], [20, 25, 18, 22])]  # forgets about 79
    hnet = [_run([100, 99, 101, 100], [99, 100, 98, 101])]  # forgets about 0.5
    lines = forgetting_compared({"hnet": hnet, "finetune": finetune})
    row = next(line for line in lines if line.startswith("| finetune - hnet |"))
    value = (np.mean([100, 102, 98, 101]) - np.mean([20, 25, 18, 22])) - 0.5
    assert row.startswith(f"| finetune - hnet | {value:.1f} [") and row.endswith(" * |")


def test_seeds_compare_over_seeds_and_noise_is_not_marked():
    same = [_run([100.0], [100.0 + d]) for d in (-5, 5, 0)]
    other = [_run([100.0], [100.0 + d]) for d in (4, -4, 1)]
    lines = forgetting_compared({"coreset": other, "hnet": same})
    row = next(line for line in lines if line.startswith("| coreset - hnet |"))
    assert "[" in row and not row.endswith(" * |")


def test_no_comparison_with_one_method_or_an_unfinished_run():
    run = _run([1.0], [1.0])
    assert forgetting_compared({"hnet": [run]}) == []
    unfinished = {"tasks": ["a", "b"], "returns": {"0": [[1.0]]}}
    assert forgetting_compared({"hnet": [run], "finetune": [unfinished]}) == []
