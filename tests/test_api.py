"""The public ContinualDynamics API: usage, persistence and errors on bad input."""

import numpy as np
import pytest
import torch

from hypercrl import ContinualDynamics
from hypercrl.cl import METHODS
from hypercrl.synthetic import synthetic_tasks

TASKS = synthetic_tasks(2, state_dim=3, action_dim=2, samples=300, seed=1)
SMALL = {"hidden": (16, 16)}
OPTIONS = {"hnet": {"hnet_hidden": (8,)}, "chunked_hnet": {"chunk_dim": 100}}


def trained(method: str, tasks=TASKS, steps: int = 20) -> ContinualDynamics:
    cd = ContinualDynamics(3, 2, method, seed=0, **SMALL, **OPTIONS.get(method, {}))
    for task in tasks:
        cd.begin_task()
        cd.fit(*task, steps=steps)
        cd.end_task()
    return cd


def test_predict_keeps_the_array_type():
    cd = trained("hnet")
    s, a, _ = TASKS[0]
    out = cd.predict(s[:5], a[:5], task=0)
    assert isinstance(out, np.ndarray) and out.shape == (5, 3) and out.dtype == s.dtype
    out_t = cd.predict(torch.as_tensor(s[:5]), torch.as_tensor(a[:5]), task=1)
    assert isinstance(out_t, torch.Tensor) and out_t.shape == (5, 3)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_save_load_reproduces_predictions_exactly(method, tmp_path):
    cd = trained(method)
    path = tmp_path / "model.pt"
    cd.save(path)
    loaded = ContinualDynamics.load(path)
    s, a, _ = TASKS[1]
    for task in range(2):
        np.testing.assert_array_equal(cd.predict(s, a, task), loaded.predict(s, a, task))


@pytest.mark.parametrize("method", ["hnet", "ewc"])
def test_save_mid_task_then_resume_trains_identically(method, tmp_path):
    cd = trained(method, TASKS[:1])
    cd.begin_task()
    cd.fit(*TASKS[1], steps=10)
    cd.save(tmp_path / "mid.pt")
    resumed = ContinualDynamics.load(tmp_path / "mid.pt")
    for model in (cd, resumed):
        model.fit(*TASKS[1], steps=10)
        model.end_task()
    s, a, _ = TASKS[0]
    for task in range(2):
        np.testing.assert_array_equal(cd.predict(s, a, task), resumed.predict(s, a, task))


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown method 'foo'.*hnet"):
        ContinualDynamics(3, 2, "foo")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['betta'\]"):
        ContinualDynamics(3, 2, "hnet", betta=0.1)
    with pytest.raises(ValueError, match="state_dim"):
        ContinualDynamics(0, 2)
    cd = ContinualDynamics(3, 2, "finetune", **SMALL)
    s, a, s2 = TASKS[0]
    with pytest.raises(ValueError, match="outside a task"):
        cd.fit(s, a, s2, steps=1)
    with pytest.raises(ValueError, match="task 0 has not been seen"):
        cd.predict(s, a, task=0)
    cd.begin_task()
    with pytest.raises(ValueError, match=r"states must have shape \[N, 3\]"):
        cd.fit(s[:, :2], a, s2)
    with pytest.raises(ValueError, match="actions has 10 rows"):
        cd.fit(s, a[:10], s2)
    bad = s2.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="next_states contains NaN"):
        cd.fit(s, a, bad)
    with pytest.raises(ValueError, match="still running"):
        cd.begin_task()
    with pytest.raises(ValueError, match="task 4 has not been seen"):
        cd.predict(s, a, task=4)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    with pytest.raises(ValueError, match="junk.pt is not a saved ContinualDynamics model"):
        ContinualDynamics.load(junk)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt is not a saved ContinualDynamics model"):
        ContinualDynamics.load(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no such file"):
        ContinualDynamics.load(tmp_path / "missing.pt")


def test_state_spec_and_probabilistic_model_train_and_predict():
    cd = ContinualDynamics(3, 2, "hnet", state_spec=["delta", "angle", "absolute"],
                           probabilistic=True, **SMALL, hnet_hidden=(8,))
    s, a, s2 = TASKS[0]
    cd.begin_task()
    stats = cd.fit(s, a, s2, steps=30)
    cd.end_task()
    assert np.isfinite(stats["loss"])
    assert cd.predict(s, a, 0).shape == s.shape
