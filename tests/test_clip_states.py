"""``clip_states``: predictions and planning rollouts stay inside the range each task's data
visited (a named option, off by default as in the original)."""

import math

import numpy as np
import pytest
import torch
from launchtools import launch_module

from hypercrl import ContinualDynamics
from hypercrl.config import RunConfig
from hypercrl.model.predictor import CLIP_MARGIN
from hypercrl.plan import CEM, CEMConfig, MPCAgent


def _integrator_data(n: int = 400, seed: int = 0):
    """s' = s + 0.1 a on states in [-1, 1]^2 (plus a constant third dim): a model of it
    extrapolates linearly, so a long push in one direction leaves the data."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    s[:, 2] = 0.5
    a = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    s2 = s.copy()
    s2[:, :2] += 0.1 * a
    return s, a, s2


def _trained(clip: bool, kinds=None) -> ContinualDynamics:
    cd = ContinualDynamics(3, 2, "finetune", seed=0, hidden=(32, 32), clip_states=clip,
                           state_spec=kinds)
    cd.begin_task()
    cd.fit(*_integrator_data(), steps=300)
    cd.end_task()
    return cd


def _pushed_far(cd: ContinualDynamics, steps: int = 60) -> torch.Tensor:
    """A rollout that pushes along +x for ``steps`` steps from the origin: [steps, 3]."""
    actions = torch.zeros(1, steps, 2)
    actions[..., 0] = 1.0
    return cd.predictor(0).rollout(torch.zeros(3), actions)[0]


def _visited(data) -> tuple[np.ndarray, np.ndarray]:
    s, _, s2 = data
    both = np.concatenate([s, s2])
    return both.min(0), both.max(0)


def test_rollouts_stay_in_the_visited_range_only_when_asked():
    low, high = _visited(_integrator_data())
    slack = CLIP_MARGIN * (high - low)
    free = _pushed_far(_trained(clip=False))
    clipped = _pushed_far(_trained(clip=True))
    # without clipping the model walks on past the data (60 x 0.1 = 6 >> 1)
    assert free[-1, 0] > high[0] + 1.0
    # with it, every predicted state is inside the range plus its margin, and it still moves
    assert torch.all(clipped >= torch.as_tensor(low - slack) - 1e-6)
    assert torch.all(clipped <= torch.as_tensor(high + slack) + 1e-6)
    assert clipped[-1, 0] == pytest.approx(high[0] + slack[0], abs=1e-5)
    # a constant dimension (range 0) is held at its value
    assert torch.allclose(clipped[:, 2], torch.full((60,), 0.5))


def test_one_step_predictions_are_clipped_too_and_unchanged_inside():
    free, clipped = _trained(clip=False), _trained(clip=True)
    s, a, _ = _integrator_data(50, seed=3)
    inside = free.predict(s, a, task=0)
    # both models are the same weights (same seed, same data): inside the range they agree
    assert np.array_equal(clipped.predict(s, a, task=0), np.clip(inside, *_bounds(clipped)))
    far = np.array([[5.0, 0.0, 0.5]], np.float32)
    low, high = _visited(_integrator_data())
    bound = high[0] + CLIP_MARGIN * (high[0] - low[0])
    assert free.predict(far, np.zeros((1, 2), np.float32), task=0)[0, 0] > bound + 1.0
    assert clipped.predict(far, np.zeros((1, 2), np.float32), task=0)[0, 0] <= bound + 1e-5


def _bounds(cd: ContinualDynamics) -> tuple[np.ndarray, np.ndarray]:
    low, high = cd.predictor(0).bounds
    return low.numpy(), high.numpy()


def test_quaternions_and_wrapping_angles_are_left_free():
    # dims: an angle that never turned far (clipped), an angle that wrapped (free), a delta
    cd = ContinualDynamics(3, 1, "finetune", seed=0, hidden=(8,), clip_states=True,
                           state_spec=("angle", "angle", "delta"))
    cd.begin_task()
    rng = np.random.default_rng(0)
    s = np.stack([rng.uniform(0, 0.3, 100), rng.uniform(-3.1, 3.1, 100),
                  rng.uniform(0, 1, 100)], 1).astype(np.float32)
    cd.fit(s, rng.uniform(-1, 1, (100, 1)).astype(np.float32), s, steps=1)
    cd.end_task()
    low, high = _bounds(cd)
    assert np.isfinite(low[0]) and np.isfinite(high[0]) and high[0] < 0.4
    assert low[1] == -math.inf and high[1] == math.inf
    assert np.isfinite(low[2]) and np.isfinite(high[2])

    quat = ContinualDynamics(4, 1, "finetune", seed=0, hidden=(8,), clip_states=True,
                             state_spec=("quat",) * 4)
    quat.begin_task()
    q = np.tile(np.array([[1.0, 0, 0, 0]], np.float32), (20, 1))
    quat.fit(q, np.zeros((20, 1), np.float32), q, steps=1)
    quat.end_task()
    low, high = quat.predictor(0).bounds
    assert torch.all(low == -math.inf) and torch.all(high == math.inf)


def test_off_by_default_and_round_trips(tmp_path):
    cd = ContinualDynamics(3, 2, "finetune", seed=0, hidden=(8,))
    assert cd.clip_states is False and cd.config["clip_states"] is False
    clipped = _trained(clip=True)
    clipped.save(tmp_path / "m.pt")
    loaded = ContinualDynamics.load(tmp_path / "m.pt")
    assert loaded.clip_states is True
    for x, y in zip(_bounds(clipped), _bounds(loaded), strict=True):
        assert np.array_equal(x, y)
    assert torch.equal(_pushed_far(loaded), _pushed_far(clipped))


def test_switching_clip_states_on_a_trained_model_takes_effect_at_once():
    cd = _trained(clip=False)
    assert _pushed_far(cd)[-1, 0] > 2.0  # its predictor is now cached, unclipped
    cd.clip_states = True
    assert cd.config["clip_states"] is True
    assert torch.equal(_pushed_far(cd), _pushed_far(_trained(clip=True)))
    with pytest.raises(ValueError, match="clip_states"):
        cd.clip_states = "yes"


def test_a_model_saved_before_the_visited_range_loads_unbounded(tmp_path):
    state = _trained(clip=False).state_dict()
    for norm in state["normalizers"]:  # as written before s_low / s_high existed
        del norm["s_low"], norm["s_high"]
    state["config"].pop("clip_states")
    loaded = ContinualDynamics.load_from_state(state)
    assert loaded.clip_states is False
    assert torch.all(loaded.normalizers[0].s_high == math.inf)
    loaded.clip_states = True  # nothing recorded: clipping leaves every prediction free
    assert loaded.config["clip_states"] is True
    assert torch.equal(_pushed_far(loaded), _pushed_far(_trained(clip=False)))


def test_the_planner_no_longer_finds_returns_outside_the_data():
    # reward: how far along +x the state gets. Through the unclipped model the plan's
    # predicted path runs far past anything seen; through the clipped one it stops at the
    # edge of the range, and so does the return the planner believes in
    def reward(state, action, next_state):
        return next_state[..., 0]

    low, high = _visited(_integrator_data())
    bound = high[0] + CLIP_MARGIN * (high[0] - low[0])
    ends, returns = {}, {}
    for clip in (False, True):
        cd = _trained(clip=clip)
        cem = CEM([-1, -1], [1, 1], horizon=40, config=CEMConfig(population=64, elites=8,
                  iterations=3), generator=torch.Generator().manual_seed(0))
        agent = MPCAgent(cd, reward, cem, task=0)
        plan = agent.plan(torch.zeros(3))
        ends[clip] = float(cd.predictor(0).rollout(torch.zeros(3), plan[None])[0, -1, 0])
        returns[clip] = float(agent._objective(plan[None]).item())
    assert ends[False] > 2 * bound and ends[True] <= bound + 1e-5
    assert returns[True] <= 40 * bound < returns[False]


def test_clip_states_is_refused_where_there_is_no_model_to_clip():
    with pytest.raises(ValueError, match="clip_states"):
        RunConfig.from_dict({"sequence": "push", "method": "oa", "clip_states": True})
    RunConfig.from_dict({"sequence": "push", "method": "hnet", "clip_states": True})


def _tiny_run(tmp_path, clip: bool) -> str:
    from hypercrl import cli
    from hypercrl.config import from_sequence

    cfg = from_sequence(cli._sequence("push", "mujoco"), "smoke", "finetune", num_tasks=1,
                        init_random_steps=12, mpc_steps=4, retrain_every=4, train_iters=2,
                        episode_steps=6, eval_episodes=1, horizon=3, heldout_size=8,
                        population=8, elites=2, iterations=1, clip_states=clip)
    return cli.start_run(cfg, str(tmp_path / f"run-{clip}"), quiet=True)


def test_a_run_with_clip_states_plans_inside_its_range(tmp_path, capsys):
    import json

    from hypercrl.loop import saved_model_path

    plan_check = launch_module("plan_check")
    run_dir = _tiny_run(tmp_path, clip=True)
    saved = ContinualDynamics.load(saved_model_path(run_dir, 0, ".pt"))
    assert saved.clip_states and torch.isfinite(saved.normalizers[0].s_high).all()
    capsys.readouterr()
    assert plan_check.main([run_dir, "--steps", "4", "--every", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["clip"] is True and out["range_from"] == "the model's record"
    assert out["plans_leaving_range"] == 0.0 and len(out["rows"]) == 4


def test_plan_check_compares_promise_and_outcome(tmp_path, capsys):
    import json

    plan_check = launch_module("plan_check")
    run_dir = _tiny_run(tmp_path, clip=False)
    capsys.readouterr()
    assert plan_check.main([run_dir, "--steps", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["clip"] is False and out["steps"] == 5 and out["horizon"] == 3
    assert math.isfinite(out["mean_predicted_h_return"])
    assert math.isfinite(out["mean_realised_h_return"])
    assert 0.0 <= out["plans_leaving_range"] <= 1.0
    assert plan_check.main([run_dir, "--steps", "5", "--clip"]) == 0
    clipped = json.loads(capsys.readouterr().out)
    assert clipped["clip"] is True and clipped["plans_leaving_range"] == 0.0
    # a model saved before the range was recorded: the task's held-out states stand in
    from hypercrl.loop import saved_model_path

    path = saved_model_path(run_dir, 0, ".pt")
    state = torch.load(path, weights_only=False)
    for norm in state["normalizers"]:
        del norm["s_low"], norm["s_high"]
    torch.save(state, path)
    assert plan_check.main([run_dir, "--steps", "5", "--clip"]) == 0
    old = json.loads(capsys.readouterr().out)
    assert old["range_from"] == "the held-out transitions" and old["plans_leaving_range"] == 0.0
