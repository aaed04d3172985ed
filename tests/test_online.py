"""Method ``oa``: the online world model that cannot forget, alone and in the loop."""

import numpy as np
import pytest
import torch

from hypercrl.config import from_sequence
from hypercrl.loop import ContinualRun
from hypercrl.model.online import OnlineDynamics
from hypercrl.plan import as_rollout
from hypercrl.synthetic import synthetic_tasks


def _data(n=600, seed=0):
    (s, a, s2), = synthetic_tasks(1, samples=n, seed=seed)
    return s, a, s2


def test_follow_the_leader_fits_all_data_whatever_the_order():
    s, a, s2 = _data()
    online = OnlineDynamics(4, 2, seed=0)
    for k in range(0, 600, 150):  # four "tasks" absorbed one after another
        online.add(s[k:k + 150], a[k:k + 150], s2[k:k + 150])
        online.solve()
    batch = OnlineDynamics(4, 2, seed=0)
    batch.add(s[:150], a[:150], s2[:150])  # the same frozen features (from the first data)
    batch.add(s[150:], a[150:], s2[150:])
    batch.solve()
    assert torch.allclose(online.weights, batch.weights, rtol=1e-8, atol=1e-10)
    # the closed form: ridge regression on every transition seen
    phi = batch.features(torch.as_tensor(s), torch.as_tensor(a))
    y = torch.as_tensor(s2, dtype=torch.float64) - torch.as_tensor(s, dtype=torch.float64)
    eye = torch.eye(phi.shape[1], dtype=torch.float64)
    w = torch.linalg.solve(phi.T @ phi + batch.options.ridge * eye, phi.T @ y)
    assert torch.allclose(batch.weights, w, rtol=1e-6, atol=1e-8)


def test_it_learns_a_nonlinear_system_and_keeps_what_it_learned():
    s, a, s2 = _data(6000)
    left, right = s[:, 0] < 0, s[:, 0] >= 0  # two regions of the state space, one after another
    model = OnlineDynamics(4, 2, seed=0, projections=64, bins=16)
    model.add(s[left][:2000], a[left][:2000], s2[left][:2000])
    model.solve()
    held = (s[left][2000:], a[left][2000:], s2[left][2000:])
    zero = float(((held[2] - held[0]) ** 2).mean())  # predicting no change
    first = model.mse(*held)
    assert first < 0.05 * zero, (first, zero)
    model.begin_task()  # the second region: covariate shift, the same dynamics
    model.add(s[right][:2000], a[right][:2000], s2[right][:2000])
    model.solve()
    assert model.mse(*held) < 1.5 * first
    assert model.mse(s[right][2000:], a[right][2000:], s2[right][2000:]) < 0.05 * zero


def test_predictor_matches_the_float64_model_and_rolls_out():
    s, a, s2 = _data()
    model = OnlineDynamics(4, 2, seed=0)
    model.add(s, a, s2)
    model.solve()
    pred = model.predictor(3)  # any task: one model
    assert pred is model.predictor(0)
    st, at = torch.as_tensor(s[:50]), torch.as_tensor(a[:50])
    exact = st.double() + model.features(st, at) @ model.weights
    assert torch.allclose(pred(st, at).double(), exact, atol=1e-4)
    acts = torch.as_tensor(a[:12]).view(3, 4, 2)
    roll = as_rollout(pred).rollout(st[0], acts)
    assert roll.shape == (3, 4, 4)
    assert torch.allclose(roll[:, 0], pred(st[0].expand(3, 4), acts[:, 0]))


def test_save_load_and_errors(tmp_path):
    s, a, s2 = _data()
    model = OnlineDynamics(4, 2, seed=3, projections=8, bins=4)
    with pytest.raises(ValueError, match="seen no data"):
        model.predictor(0)
    model.add(s, a, s2)
    model.solve()
    model.save(tmp_path / "oa.pt")
    back = OnlineDynamics.load(tmp_path / "oa.pt")
    assert np.array_equal(back.predict(s, a), model.predict(s, a))
    for bad in ({"bins": 1}, {"projections": 0}, {"ridge": 0.0}, {"span": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            OnlineDynamics(4, 2, **bad)


def test_oa_runs_in_the_loop_with_one_model_for_all_tasks(tmp_path):
    import toyseq

    seq = toyseq.sequence(2)
    cfg = from_sequence(seq, "smoke", "oa", num_tasks=2, projections=16, bins=8)
    assert cfg.method_options == {"projections": 16, "bins": 8, "span": 3.0, "ridge": 10.0}
    run = ContinualRun(cfg, seq, str(tmp_path), quiet=True, tensorboard=False)
    metrics = run.run()
    dyn = run.learner.dynamics
    assert isinstance(dyn, OnlineDynamics) and dyn.num_tasks == 2
    assert dyn.count > 0 and run.learner.counts["gradient_steps"] == 0
    assert np.all(np.isfinite(metrics["model_error_1"]["1"]))
    assert len(metrics["returns"]["1"]) == 2
    with pytest.raises(ValueError, match="method 'oa' cannot infer its task"):
        from_sequence(seq, "smoke", "oa", task_boundaries="inferred")
