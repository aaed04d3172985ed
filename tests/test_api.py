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


@pytest.mark.parametrize("method", ["hnet", "chunked_hnet", "ewc", "coreset"])
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


def test_absolute_dims_are_outputs_only_unless_asked(tmp_path):
    """As the original (reference §2.4), an "absolute" dim (HalfCheetah's vx) is predicted but
    not fed to the model: changing it leaves every prediction unchanged. With
    ``absolute_inputs=True`` it is an input; a model saved before the option existed fed
    it, and loads that way."""
    kinds = ["delta", "angle", "absolute"]
    s, a, s2 = TASKS[0]
    other = s.copy()
    other[:, 2] += 3.0
    preds = {}
    for fed in (False, True):
        cd = ContinualDynamics(3, 2, "hnet", state_spec=kinds, absolute_inputs=fed, **SMALL,
                               hnet_hidden=(8,))
        assert cd.net.in_dim == 1 + 2 + fed + 2  # delta, cos and sin, [absolute], 2 actions
        cd.begin_task()
        cd.fit(s, a, s2, steps=30)
        cd.end_task()
        moved = cd.predict(other, a, 0) - cd.predict(s, a, 0)
        preds[fed] = np.abs(moved).max()
        cd.save(tmp_path / f"m{fed}.pt")
        assert ContinualDynamics.load(tmp_path / f"m{fed}.pt").spec.absolute_inputs is fed
    assert preds[False] == 0.0 and preds[True] > 1e-4
    state = torch.load(tmp_path / "mTrue.pt", weights_only=False)
    del state["config"]["absolute_inputs"]  # as written before the option existed
    old = ContinualDynamics.load_from_state(state)
    assert old.spec.absolute_inputs and old.net.in_dim == 6
    np.testing.assert_array_equal(old.predict(s, a, 0), cd.predict(s, a, 0))


def test_end_task_consolidates_on_the_data_it_is_given():
    s, a, s2 = TASKS[0]
    cd = ContinualDynamics(3, 2, "multitask", hidden=(8,))
    cd.begin_task()
    cd.fit(s[:50], a[:50], s2[:50], steps=2)
    with pytest.raises(ValueError, match="pass states, actions and next_states together"):
        cd.end_task(s, a)
    cd.end_task(s, a, s2)  # the whole task, after the last fit
    assert cd.strategy.memory[0][0].shape[0] == len(s)
    assert bool(cd.normalizers[0].frozen)


def _manual_prediction(cd: ContinualDynamics, s: np.ndarray, a: np.ndarray, task: int):
    """s + y_std * MLP(standardised [s, a]) + y_mean, with the task's generated weights run by
    hand (ReLU hidden layers, linear output)."""
    norm = cd.normalizers[task]
    with torch.no_grad():
        w = {k: v[0] for k, v in cd.strategy.weights([task]).items()}
        h = (torch.cat([torch.as_tensor(s), torch.as_tensor(a)], 1) - norm.x_mean) / norm.x_std
        n = len(cd.net.layers)
        for i in range(n):
            h = h @ w[f"layers.{i}.weight"].T + w[f"layers.{i}.bias"]
            h = torch.relu(h) if i < n - 1 else h
        return (torch.as_tensor(s) + h * norm.y_std + norm.y_mean).numpy()


def test_raw_targets_by_default_as_the_original():
    """normalize_targets False: inputs standardised per task, the target net learns the raw
    state delta, so prediction = s + f(standardised [s, a])."""
    cd = trained("hnet", TASKS[:1])
    assert cd.config["normalize_targets"] is False
    norm = cd.normalizers[0]
    assert torch.equal(norm.y_mean, torch.zeros(3)) and torch.equal(norm.y_std, torch.ones(3))
    s, a, s2 = TASKS[0]
    x = np.concatenate([s, a], 1)
    np.testing.assert_allclose(norm.x_mean.numpy(), x.mean(0), rtol=1e-4, atol=1e-5)
    assert not torch.equal(norm.x_std, torch.ones(5))
    # the target net's output is the raw delta: prediction = s + f(standardised [s, a])
    np.testing.assert_allclose(cd.predict(s, a, 0), _manual_prediction(cd, s, a, 0),
                               rtol=1e-5, atol=1e-5)
    assert ((s2 - s).std(0) < 0.7).all()  # deltas far from unit scale: identity stats show


def test_normalize_targets_true_standardises_the_deltas():
    cd = ContinualDynamics(3, 2, "finetune", seed=0, normalize_targets=True, **SMALL)
    s, a, s2 = TASKS[0]
    cd.begin_task()
    cd.fit(s, a, s2, steps=5)
    norm = cd.normalizers[0]
    np.testing.assert_allclose(norm.y_mean.numpy(), (s2 - s).mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(norm.y_std.numpy(), (s2 - s).std(0, ddof=1), rtol=1e-4)
    np.testing.assert_allclose(cd.predict(s, a, 0), _manual_prediction(cd, s, a, 0),
                               rtol=1e-5, atol=1e-5)


def test_normalize_targets_round_trips_and_old_saves_load_as_standardised(tmp_path):
    cd = ContinualDynamics(3, 2, "finetune", seed=0, normalize_targets=True, **SMALL)
    s, a, s2 = TASKS[0]
    cd.begin_task()
    cd.fit(s, a, s2, steps=5)
    cd.end_task()
    cd.save(tmp_path / "m.pt")
    assert ContinualDynamics.load(tmp_path / "m.pt").config["normalize_targets"] is True
    old = cd.state_dict()
    old["config"] = {k: v for k, v in old["config"].items() if k != "normalize_targets"}
    loaded = ContinualDynamics.load_from_state(old)
    assert loaded.normalize_targets is True and loaded.config["normalize_targets"] is True
    np.testing.assert_array_equal(loaded.predict(s, a, 0), cd.predict(s, a, 0))
    assert ContinualDynamics(3, 2, "finetune").config["normalize_targets"] is False


@pytest.mark.parametrize("normalize_targets", [False, True])
def test_fit_trains_on_raw_or_standardised_deltas(normalize_targets):
    cd = ContinualDynamics(3, 2, "finetune", seed=0, normalize_targets=normalize_targets,
                           **SMALL)
    batches = []
    step = cd.strategy.train_step
    cd.strategy.train_step = lambda t, x, y: (batches.append(y), step(t, x, y))[1]
    s, a, s2 = TASKS[0]
    cd.begin_task()
    cd.fit(s, a, s2, steps=3)
    delta = torch.as_tensor(s2 - s)
    expected = (delta - delta.mean(0)) / delta.std(0) if normalize_targets else delta
    for y in batches:  # every row of every batch is a row of the expected targets
        gaps = (y[:, None, :] - expected[None]).abs().amax(-1).amin(-1)
        assert float(gaps.max()) < 1e-5


def test_fit_draws_epochs_without_replacement_as_the_original_loader():
    from hypercrl.data import EpochBatches

    gen = torch.Generator().manual_seed(0)
    batches = EpochBatches(250, 100, gen)
    first, second = next(batches), next(batches)
    epoch = torch.cat([first, second])
    assert epoch.unique().numel() == 200  # no index twice within an epoch
    third = next(batches)  # the last 50 were dropped: a new permutation starts
    assert third.unique().numel() == 100
    small = next(EpochBatches(7, 100, gen))  # fewer points than a batch: with replacement
    assert small.shape == (100,) and small.max() < 7


def test_multitask_saved_between_retrains_replays_the_batches_it_would_have(tmp_path):
    # the earlier tasks' loaders keep their place across a task's retrains, and the place
    # travels with the state: a run resumed between two retrains draws the same batches
    tasks = synthetic_tasks(2, state_dim=4, action_dim=2, samples=250, seed=4)

    def first(cd):
        cd.begin_task()
        cd.fit(*tasks[0], steps=10)
        cd.end_task()
        cd.begin_task()
        cd.fit(*tasks[1], steps=3)  # task 0's 250 points: epochs of 2 batches of 100
        return cd

    def second(cd):
        cd.fit(*tasks[1], steps=5)
        return cd.predict(tasks[1][0], tasks[1][1], task=1)

    straight = second(first(ContinualDynamics(4, 2, "multitask", seed=0, hidden=(16,))))
    saved = first(ContinualDynamics(4, 2, "multitask", seed=0, hidden=(16,)))
    assert saved.strategy.batches[0].pos == 100  # mid-epoch: its second batch is next
    saved.save(tmp_path / "m.pt")
    resumed = ContinualDynamics.load(tmp_path / "m.pt")
    assert torch.equal(resumed.strategy.batches[0].perm, saved.strategy.batches[0].perm)
    np.testing.assert_array_equal(straight, second(resumed))
    fresh = ContinualDynamics.load(tmp_path / "m.pt")
    fresh.strategy.batches = {}  # without the place: other batches, another model
    assert not np.array_equal(straight, second(fresh))


@pytest.mark.parametrize("method", ["hnet", "coreset", "multitask", "finetune"])
def test_save_load_then_a_new_task_trains_as_without_the_save(method, tmp_path):
    # the strategy's own stream (new embeddings, new heads, replay draws) is in the state
    tasks = synthetic_tasks(2, state_dim=4, action_dim=2, samples=200, seed=3)

    def first(cd):
        cd.begin_task()
        cd.fit(*tasks[0], steps=20)
        cd.end_task()
        return cd

    def second(cd):
        cd.begin_task()
        cd.fit(*tasks[1], steps=20)
        return cd.predict(tasks[1][0], tasks[1][1], task=1)

    kw = {"hidden": (16, 16)}
    straight = second(first(ContinualDynamics(4, 2, method, seed=0, **kw)))
    saved = first(ContinualDynamics(4, 2, method, seed=0, **kw))
    saved.save(tmp_path / "m.pt")
    resumed = second(ContinualDynamics.load(tmp_path / "m.pt"))
    np.testing.assert_array_equal(straight, resumed)
