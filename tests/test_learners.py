"""Learners as the loop drives them: the paper planner's final action, random acting until the
current task's model is fitted, and save/load through the learner."""

import logging

import numpy as np
import pytest
import torch

from hypercrl import cli
from hypercrl.config import from_sequence
from hypercrl.learners import ModelBasedLearner, Transition


def _learner(profile="paper", method="hnet", **values):
    seq = cli._sequence("push", "mujoco")
    cfg = from_sequence(seq, profile, method, **values)
    return ModelBasedLearner(cfg, seq), seq


def _feed(learner, n, rng):
    """n random transitions into the current task; returns the train stats of the last retrain."""
    stats = {}
    for _ in range(n):
        obs = rng.standard_normal(10).astype(np.float32)
        action = learner.act(obs)
        out = learner.observe(Transition(obs, action, 0.0, obs + 0.01 * action.sum(), False,
                                         False))
        stats = out or stats
    return stats


def test_paper_planner_executes_the_best_sample_of_a_final_population():
    learner, _ = _learner("paper", init_random_steps=4, train_iters=2, hidden=(32, 32))
    learner.begin_task(0)
    _feed(learner, 4, np.random.default_rng(0))
    assert learner.fitted
    calls = []
    real = learner.agent._returns_fn

    def spy(model, reward, state, actions, weights):
        returns = real(model, reward, state, actions, weights)
        calls.append((actions.clone(), returns.clone()))
        return returns

    learner.agent._returns_fn = spy
    action = learner.act(np.zeros(10, np.float32))
    assert len(calls) == 6  # five refits, then one more population
    assert all(a.shape == (500, 20, 2) for a, _ in calls)
    last_actions, last_returns = calls[-1]
    best = last_actions[int(torch.argmax(last_returns))]
    np.testing.assert_array_equal(action, best[0].numpy())
    # not the mean of the final distribution, nor the best of an earlier population
    earlier_best = calls[-2][0][int(torch.argmax(calls[-2][1]))]
    assert not torch.equal(best, earlier_best)


def test_without_warm_up_it_acts_randomly_until_the_current_task_is_fitted(caplog):
    learner, _ = _learner("smoke", init_random_steps=0, retrain_every=5, mpc_steps=20,
                          train_iters=2)
    planned = []
    real_act = learner.agent.act
    learner.agent.act = lambda obs: planned.append(learner.agent.task) or real_act(obs)
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.WARNING, logger="hypercrl"):
        learner.begin_task(0)
        _feed(learner, 4, rng)  # before the first retrain point: random, no error
    assert planned == [] and not learner.fitted
    assert "task 0: no model of this task is fitted yet" in caplog.text
    _feed(learner, 16, rng)
    assert learner.fitted and planned and set(planned) == {0}
    learner.end_episode()
    learner.end_task()
    # task 1 never plans with task 0's model
    planned.clear()
    learner.begin_task(1)
    _feed(learner, 4, rng)
    assert planned == [] and not learner.fitted
    _feed(learner, 6, rng)
    assert learner.fitted and set(planned) == {1}


@pytest.mark.parametrize("method,options", [("multitask", {}),
                                            ("coreset", {"coreset_size": 10_000})])
def test_the_method_consolidates_on_every_transition_of_the_task(method, options):
    """The last retrain comes retrain_every steps before the task ends; the original's
    consolidation (reference §6.2) still sees all of the task's training data: multitask
    keeps every transition, coreset draws its M from all of them (here M exceeds them)."""
    learner, _ = _learner("smoke", method, init_random_steps=10, retrain_every=10,
                          mpc_steps=20, train_iters=2, heldout_fraction=0.0, **options)
    learner.begin_task(0)
    rng = np.random.default_rng(2)
    _feed(learner, 30, rng)  # retrains at MPC steps 0 and 10, i.e. on 10 and 20 transitions
    assert len(learner.buffer) == 30
    s, a, s2 = (torch.as_tensor(v) for v in learner.buffer.arrays())
    learner.end_task()
    x, _ = learner.dynamics.strategy.memory[0]
    assert x.shape[0] == 30
    norm = learner.dynamics.normalizers[0]
    kept = x * norm.x_std + norm.x_mean  # the raw inputs [s, a], in some order
    raw = torch.cat([s, a], 1)
    assert torch.allclose(kept[torch.argsort(kept[:, 0])], raw[torch.argsort(raw[:, 0])],
                          atol=1e-5)


def test_save_and_load_through_the_learner(tmp_path):
    learner, seq = _learner("smoke", train_iters=3)
    learner.begin_task(0)
    _feed(learner, 60, np.random.default_rng(1))
    learner.end_task()
    path = str(tmp_path / "model_after0.pt")
    learner.save(path)
    other, _ = _learner("smoke", train_iters=3)
    other.load(path)
    obs = np.linspace(-1, 1, 10).astype(np.float32)
    s = torch.as_tensor(obs)[None]
    a = torch.ones(1, 2)
    np.testing.assert_array_equal(learner.dynamics.predict(s, a, task=0),
                                  other.dynamics.predict(s, a, task=0))
    assert other.policy(0)(obs).shape == (2,)


def test_h_step_error_is_the_mean_of_open_loop_errors_over_held_out_segments():
    learner, _ = _learner("smoke", train_iters=3, horizon=3)
    learner.begin_task(0)
    obs = np.zeros(10, np.float32)
    for i in range(80):  # one trajectory; its last 20 steps held out, chaining into segments
        action = learner.act(obs)
        nxt = (0.9 * obs + 0.05 * action.sum()).astype(np.float32)
        learner.observe(Transition(obs, action, 0.0, nxt, False, False, heldout=i >= 60))
        obs = nxt
    rng = np.random.default_rng(3)
    a = rng.uniform(-1, 1, (11, 2)).astype(np.float32)
    s = rng.standard_normal((11, 10)).astype(np.float32)
    for k in list(range(6)) + [7, 8, 9]:  # rows 0-6 and 7-10 are chains; 6 -> 7 breaks
        s[k + 1] = s[k] + 0.1 * a[k].sum()
    s2 = np.concatenate([s[1:], rng.standard_normal((1, 10)).astype(np.float32)])
    s2[6] = s[6] + 1.0  # not row 7's state
    seg = learner.h_step_segment_errors(0, s, a, s2)
    # windows of 3 consecutive rows start at 0-4 and 7-8; every third of them is used
    starts = [0, 3, 8]
    expected = []
    for k in starts:
        x = torch.as_tensor(s[k])[None]
        for t in range(3):
            x = learner.dynamics.predict(x, torch.as_tensor(a[k + t])[None], task=0)
        expected.append(float((x[0] - torch.as_tensor(s2[k + 2])).pow(2).mean()))
    np.testing.assert_allclose(seg, expected, rtol=1e-4)
    assert learner._h_step_error(0, s, a, s2) == pytest.approx(np.mean(expected), rel=1e-4)
    hs, ha, hs2 = learner.heldout[0].arrays()  # the loop's metric: the task's held-out rows
    held = learner.h_step_segment_errors(0, hs, ha, hs2)
    assert len(held) > 0
    assert learner.model_errors(0)["model_error_h"] == [pytest.approx(held.mean(), rel=1e-4)]
    assert learner.h_step_segment_errors(0, s[:2], a[:2], s2[:2]).shape == (0,)
    assert np.isnan(learner._h_step_error(0, s[:2], a[:2], s2[:2]))
