"""A synthetic 3-task continual sequence: HyperCRL forgets far less than finetuning."""

import numpy as np
import pytest

from hypercrl import ContinualDynamics
from hypercrl.synthetic import split, synthetic_tasks

TASKS = synthetic_tasks(3, state_dim=4, action_dim=2, samples=1500, seed=0)
SIZES = {"hidden": (64, 64)}
HNET = {"lr": 1e-3, "hnet_hidden": (32, 32)}


def error_matrix(method: str, steps: int, **options) -> np.ndarray:
    """E[i, j]: held-out one-step MSE on task j after training task i."""
    cd = ContinualDynamics(4, 2, method, seed=0, **SIZES, **options)
    errors = np.full((3, 3), np.nan)
    for i, task in enumerate(TASKS):
        train, _ = split(task)
        assert cd.begin_task() == i
        cd.fit(*train, steps=steps)
        cd.end_task()
        for j in range(i + 1):
            errors[i, j] = cd.mse(*split(TASKS[j])[1], task=j)
    return errors


@pytest.fixture(scope="module")
def finetune():
    return error_matrix("finetune", 600)


def test_hnet_forgets_far_less_than_finetune(finetune):
    hnet = error_matrix("hnet", 600, **HNET)
    # measured (raw targets, summed loss, multi-head finetune): hnet 1.1e-3 vs finetune 0.24
    # on task 0 after task 2 (>200x); assert 20x
    assert hnet[2, 0] * 20 < finetune[2, 0]
    assert hnet[2, 0] < 3 * hnet[0, 0] + 1e-3  # stays near its just-trained error
    assert finetune[2, 0] > 10 * finetune[0, 0]  # finetune really forgets


def test_chunked_hnet_also_keeps_task_zero(finetune):
    chunked = error_matrix("chunked_hnet", 600, lr=1e-3)
    assert chunked[2, 0] * 20 < finetune[2, 0]


def test_multitask_is_good_everywhere_and_single_on_its_own_task(finetune):
    multitask = error_matrix("multitask", 600)
    single = error_matrix("single", 600)
    diag = np.diag(finetune)
    assert (multitask[2] < 5 * diag + 1e-3).all()
    assert (np.diag(single) < 2 * diag + 1e-3).all()
    assert single[2, 0] == pytest.approx(single[0, 0])  # its task-0 model is kept as it was


# How many times less than finetune each baseline must forget task 0 by the end. Measured with
# the original's epoch-wise minibatches (model seeds 0 / 1 / 2, finetune 0.19 / 0.26 / 0.29):
# coreset 62x / 112x / 88x, ewc 2.4x / 2.9x / 10.5x, si 1.4x / 2.8x / 5.6x; this test runs
# seed 0. The bounds for ewc and si are below 3 for a written reason: finetune is multi-head
# now, as the original's baselines, so its task-0 head survives and it forgets about 6x less
# than the single-head finetune this test was first calibrated on; the penalties' own errors
# barely moved.
FORGETS_LESS = {"coreset": 3, "ewc": 2, "si": 1.25}


@pytest.mark.parametrize("method", sorted(FORGETS_LESS))
def test_regularised_baselines_forget_less_than_finetune(method, finetune):
    errors = error_matrix(method, 600)
    assert errors[2, 0] * FORGETS_LESS[method] < finetune[2, 0]


@pytest.mark.slow
def test_regulariser_every_fourth_step_still_keeps_task_zero(finetune):
    """reg_every=4: the regulariser on one step in four, weighted 4x (not in the original)."""
    hnet = error_matrix("hnet", 600, **HNET)
    sparse = error_matrix("hnet", 600, **HNET, reg_every=4)
    np.testing.assert_array_equal(sparse[0], hnet[0])  # task 0 has nothing to regularise
    # measured: task 0 0.0009 -> 0.0011 after task 2 (every step: 0.0009 -> 0.0009), task 1
    # 0.0012 -> 0.0043 (0.0009 -> 0.0013): it forgets more, still far less than finetune
    assert sparse[2, 0] * 20 < finetune[2, 0]
    assert sparse[2, 0] < 3 * sparse[0, 0] + 1e-3


def test_reg_every_regularises_on_every_kth_step_only_and_resumes_the_count():
    import torch

    cd = ContinualDynamics(4, 2, "hnet", seed=0, **SIZES, **HNET, reg_every=3)
    for _ in range(2):
        cd.begin_task()
        cd.fit(*split(TASKS[0])[0], steps=5)
        cd.end_task()
    cd.begin_task()  # task 2: 7 steps by hand, the count restarts with the task
    x, y = torch.randn(10, 6), torch.randn(10, 4)
    regularised = ["reg" in cd.strategy.train_step(2, x, y) for _ in range(4)]
    assert regularised == [True, False, False, True]
    again = ContinualDynamics.load_from_state(cd.state_dict())
    assert ["reg" in again.strategy.train_step(2, x, y) for _ in range(3)] == [False, False, True]
