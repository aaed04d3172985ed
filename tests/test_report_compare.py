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


def _curve(task: int, successes: list[float], start: int, final: float) -> list[dict]:
    """Evaluations of ``task`` while it trains: curve points every 10 env steps from
    ``start``, then the task-end evaluation on the same step as the last point."""
    rows = [{"task": task, "after": task, "env_steps": start + 10 * (k + 1), "return": 0.0,
             "success": s, "final": False} for k, s in enumerate(successes)]
    rows.append({"task": task, "after": task, "env_steps": start + 10 * len(successes),
                 "return": 0.0, "success": final, "final": True})
    return rows


def test_window_auc_is_the_mean_over_the_tasks_own_window_and_the_final_stands_for_its_step():
    curve = _curve(0, [0.0, 0.5, 0.9], 0, 1.0) + _curve(1, [0.2, 0.4], 30, 0.6)
    # task 0 measured again while task 1 trains: not its window
    curve.append({"task": 0, "after": 1, "env_steps": 40, "return": 0.0, "success": 0.0})
    assert M.window_auc(curve, 0) == np.mean([0.0, 0.5, 1.0])
    assert M.window_auc(curve, 1) == np.mean([0.2, 0.6])
    assert np.isnan(M.window_auc(curve, 2)) and np.isnan(M.window_auc(curve, 0, "other"))
    assert M.cw_forward_transfer(0.75, 0.5) == 0.5 and M.cw_forward_transfer(0.25, 0.5) == -0.5
    assert np.isnan(M.cw_forward_transfer(0.9, 1.0))


def _cw_run(curve_1: list[float], final_1: float, s_after: list[list[float]]) -> dict:
    """A finished 2-task run with success matrix rows ``s_after`` and task 1's curve."""
    return {"tasks": ["a", "b"],
            "returns": {"0": [[0.0]], "1": [[0.0], [0.0]]},
            "successes": {str(i): [[v] for v in row] for i, row in enumerate(s_after)},
            "eval_curve": _curve(0, [0.0, 0.5], 0, 1.0) + _curve(1, curve_1, 20, final_1)}


def test_continual_world_metrics_against_single():
    from hypercrl.report import continual_world

    single = [_cw_run([0.0, 0.5], 1.0, [[1.0], [1.0, 1.0]])]  # AUC 0.5 on both tasks
    hnet = [_cw_run([1.0, 1.0], 1.0, [[1.0], [1.0, 1.0]])]  # task 1 solved from the start
    finetune = [_cw_run([0.0, 0.5], 1.0, [[1.0], [0.0, 1.0]])]  # forgets task 0
    lines = continual_world({"finetune": finetune, "hnet": hnet, "single": single})
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in lines if line[:2] == "| "}
    # columns: method, seeds, average performance, forgetting, forward transfer, per task
    assert rows["hnet"][2:5] == ["1.00", "0.00", "0.50"]  # FT: (0 + 1) / 2
    assert rows["hnet"][5] == "0.00, 1.00 |"
    assert rows["finetune"][2:5] == ["0.50", "1.00", "0.00"]
    assert rows["single"][4] == "0.00"
    assert "AUC_ref per task (`single`): 0.50, 0.50" in lines
    # without curves that record success there is no forward transfer, the rest stays
    for run in hnet:
        run["eval_curve"] = [{k: v for k, v in row.items() if k != "success"}
                             for row in run["eval_curve"]]
    lines = continual_world({"hnet": hnet, "single": single})
    assert next(line for line in lines if line.startswith("| hnet |")).endswith("| n/a | n/a |")
    # no curves at all, or no single: average performance and forgetting, no transfer
    lines = continual_world({"hnet": hnet})
    assert next(line for line in lines if line.startswith("| hnet |")).startswith(
        "| hnet | 1 | 1.00 | 0.00 | n/a | n/a |")
    assert any("Forward transfer needs training curves" in line for line in lines)
    for run in hnet:  # tasks without success (HalfCheetah): no table
        run["has_success"] = False
    assert continual_world({"hnet": hnet}) == []
