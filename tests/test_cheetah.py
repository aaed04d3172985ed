"""HalfCheetah body sequence: checkers, reward agreement, body variants, rendering, determinism."""

import pickle
import warnings

import gymnasium
import mujoco
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs import cheetah

ENV_ID = "HyperCRL/HalfCheetahBody-v0"
N_TASKS = len(cheetah.TASK_NAMES)


def _make(task: int | str = 0, **kwargs) -> gymnasium.Env:
    return gymnasium.make(ENV_ID, task=task, backend="mujoco", **kwargs)


def _rollout(env: gymnasium.Env, seed: int, steps: int) -> dict[str, np.ndarray]:
    """Random-action rollout; actions drawn from their own seeded generator, partly out of
    bounds because the planner's samples are unbounded too."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    states, actions, next_states, rewards = [], [], [], []
    for _ in range(steps):
        action = rng.uniform(-1.5, 1.5, size=env.action_space.shape)
        next_obs, r, terminated, truncated, _ = env.step(action)
        assert not terminated and not truncated
        states.append(obs)
        actions.append(action)
        next_states.append(next_obs)
        rewards.append(r)
        obs = next_obs
    return {
        "s": np.stack(states),
        "a": np.stack(actions),
        "s2": np.stack(next_states),
        "r": np.asarray(rewards),
    }


@pytest.mark.parametrize("task", range(N_TASKS))
def test_gymnasium_checker_passes(task: int) -> None:
    env = _make(task, render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # MuJoCo states are unbounded; every gymnasium MuJoCo env draws these two warnings
        warnings.filterwarnings(
            "ignore", message=".*Box observation space (minimum|maximum) value is"
        )
        gym_check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("task", range(N_TASKS))
def test_sb3_checker_passes(task: int) -> None:
    env = _make(task)
    sb3_check_env(env, warn=True)
    env.close()


def test_spaces_and_time_limit() -> None:
    env = _make("normal")
    assert env.observation_space.shape == (18,)
    assert env.observation_space.dtype == np.float64
    assert env.action_space.shape == (6,)
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    assert env.unwrapped.dt == pytest.approx(0.05)
    obs, _ = env.reset(seed=0)
    assert obs[0] == 0.0  # no displacement yet
    zero = np.zeros(6, dtype=np.float32)
    for t in range(1, cheetah.EPISODE_STEPS + 1):
        _, _, terminated, truncated, _ = env.step(zero)
        assert not terminated
        assert truncated == (t == cheetah.EPISODE_STEPS)
    env.close()


def test_observation_layout_matches_simulator() -> None:
    env = _make(0)
    env.reset(seed=3)
    data = env.unwrapped.data
    x_before = float(data.qpos[0])
    obs, _, _, _, info = env.step(np.full(6, 0.5))
    assert obs[0] == pytest.approx((data.qpos[0] - x_before) / 0.05)
    assert obs[0] == info["x_velocity"]
    np.testing.assert_array_equal(obs[1:9], data.qpos[1:])
    np.testing.assert_array_equal(obs[9:], data.qvel)
    env.close()


def test_reward_is_the_finite_difference_velocity_minus_the_control_cost() -> None:
    """The reference's reward, written out here (not through envs.cheetah's function):
    r = (x_after - x_before) / dt - 0.1 ||u||^2, with u as given (unclipped), dt = 0.05 s;
    obs[0] is that velocity."""
    env = _make(2)
    data = env.unwrapped.data
    rng = np.random.default_rng(5)
    env.reset(seed=5)
    for _ in range(30):
        action = rng.uniform(-1.5, 1.5, size=6)
        x_before = float(data.qpos[0])
        obs, r, *_ = env.step(action)
        vx = (float(data.qpos[0]) - x_before) / 0.05
        assert obs[0] == pytest.approx(vx, rel=1e-9, abs=1e-12)
        assert r == pytest.approx(vx - 0.1 * float(np.sum(action**2)), rel=1e-9, abs=1e-12)
    env.close()


@pytest.mark.parametrize("task", range(N_TASKS))
def test_env_reward_equals_sequence_reward(task: int) -> None:
    seq = envs.sequence("halfcheetah", backend="mujoco")
    env = seq[task].make()
    roll = _rollout(env, seed=10 + task, steps=40)
    env.close()
    reward_fn = seq[task].reward

    np.testing.assert_allclose(reward_fn(roll["s"], roll["a"], roll["s2"]), roll["r"], rtol=1e-12)
    as_torch = {k: torch.from_numpy(v) for k, v in roll.items()}
    torch_r = reward_fn(as_torch["s"], as_torch["a"], as_torch["s2"])
    assert isinstance(torch_r, torch.Tensor)
    torch.testing.assert_close(torch_r, as_torch["r"], rtol=1e-12, atol=1e-12)
    # batched over a leading population axis too, as the planner calls it: [P, H, S]
    batched = reward_fn(
        as_torch["s"].view(4, 10, 18), as_torch["a"].view(4, 10, 6), as_torch["s2"].view(4, 10, 18)
    )
    torch.testing.assert_close(batched.reshape(-1), as_torch["r"], rtol=1e-12, atol=1e-12)
    # the reward moves with vx and with the control cost, not only a constant
    assert np.ptp(roll["r"]) > 0.1


def test_variants_differ_in_geometry_only_where_listed() -> None:
    base = _make(0).unwrapped.model
    for task, name in enumerate(cheetah.TASK_NAMES):
        model = _make(task).unwrapped.model
        assert model.body_mass.sum() == pytest.approx(cheetah.TOTAL_MASS, rel=1e-12)
        for g in range(model.ngeom):
            geom = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g)
            expected = base.geom_size[g].copy()
            if geom in cheetah.TASK_GEOMS[name]:
                # the torso is a fromto capsule: its length comes from fromto, only r grows
                expected[: 1 if geom == "torso" else None] *= cheetah.SIZE_SCALE
            np.testing.assert_allclose(model.geom_size[g], expected, rtol=1e-12)
            np.testing.assert_array_equal(model.geom_pos[g], base.geom_pos[g])
        if name != "normal":
            # same total mass, other distribution
            assert not np.allclose(model.body_mass, base.body_mass)


def test_normal_body_equals_gymnasium_model() -> None:
    """The density that replaces settotalmass gives gymnasium's own masses and inertias."""
    ours = _make("normal").unwrapped.model
    theirs = mujoco.MjModel.from_xml_path(str(cheetah._base_xml_path()))
    for field in ("body_mass", "body_inertia", "geom_size", "dof_armature", "actuator_gear"):
        np.testing.assert_allclose(getattr(ours, field), getattr(theirs, field), rtol=1e-12)


def test_variants_differ_in_dynamics() -> None:
    ref_env = _make(0)
    ref_env.reset(seed=0)
    qpos = ref_env.unwrapped.init_qpos + 0.05
    qvel = ref_env.unwrapped.init_qvel + 0.2
    actions = np.random.default_rng(0).uniform(-1, 1, size=(10, 6))

    def next_states(task: int) -> np.ndarray:
        env = _make(task)
        env.reset(seed=0)
        env.unwrapped.set_state(qpos, qvel)
        out = np.stack([env.step(a)[0] for a in actions])
        env.close()
        return out

    trajectories = [next_states(t) for t in range(N_TASKS)]
    np.testing.assert_array_equal(trajectories[0], next_states(0))  # same body, same result
    for i in range(N_TASKS):
        for j in range(i + 1, N_TASKS):
            # first step alone already differs
            assert np.abs(trajectories[i][0] - trajectories[j][0]).max() > 1e-4, (i, j)


def test_reset_seed_is_deterministic() -> None:
    a, b = _make("big_leg"), _make("big_leg")
    roll_a, roll_b = _rollout(a, seed=7, steps=30), _rollout(b, seed=7, steps=30)
    roll_again = _rollout(a, seed=7, steps=30)
    for key in roll_a:
        np.testing.assert_array_equal(roll_a[key], roll_b[key])
        np.testing.assert_array_equal(roll_a[key], roll_again[key])
    other = _rollout(a, seed=8, steps=30)
    assert not np.array_equal(roll_a["s2"], other["s2"])
    a.close()
    b.close()


def test_rendered_frame_is_not_blank_and_shows_robot() -> None:
    env = _make("big_foot", render_mode="rgb_array")
    env.reset(seed=0)
    model = env.unwrapped.model
    # paint the torso pure red so the robot can be found in the frame
    torso = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "torso")
    model.geom_rgba[torso] = (1.0, 0.0, 0.0, 1.0)
    for _ in range(5):
        env.step(env.action_space.sample())
    frame = env.render()
    env.close()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    assert frame.std() > 10.0
    red = (frame[..., 0] > 120) & (frame[..., 1] < 60) & (frame[..., 2] < 60)
    assert red.sum() > 50  # the torso is in view


def test_task_names_and_bad_arguments() -> None:
    env = _make("big thigh")
    assert env.unwrapped.task_name == "big_thigh"
    assert env.unwrapped.scaled_geoms == ("bthigh", "fthigh")
    env.close()
    for bad in (5, -1, "huge_tail", True, 1.0):
        with pytest.raises(ValueError, match="big_foot"):
            _make(bad)
    with pytest.raises(ValueError, match="mujoco"):
        gymnasium.make(ENV_ID, task=0, backend="pybullet")
    with pytest.raises(ValueError, match="rgb_array"):
        _make(0, render_mode="human")
    with pytest.raises(ValueError, match="mujoco"):
        envs.sequence("halfcheetah", backend="pybullet")


def test_sequence_is_complete_data() -> None:
    seq = envs.sequence("halfcheetah", backend="mujoco")
    assert [t.name for t in seq] == ["normal", "big_torso", "big_thigh", "big_leg", "big_foot"]
    assert [t.index for t in seq] == list(range(N_TASKS))
    assert all(t.env_id == ENV_ID and t.backend == "mujoco" for t in seq)
    assert seq[2].params == {"scaled_geoms": ("bthigh", "fthigh"), "size_scale": 1.25}
    assert (seq.observation_dim, seq.action_dim, seq.episode_steps) == (18, 6, 1000)
    assert seq.state_kinds[:3] == ("absolute", "delta", "angle")
    assert set(seq.state_kinds[3:]) == {"delta"}
    np.testing.assert_array_equal(seq.action_low, -np.ones(6))
    np.testing.assert_array_equal(seq.action_high, np.ones(6))
    assert seq.extras["original_num_tasks"] == 3
    assert seq.schedule.init_random_steps == 10_000 and seq.schedule.train_iters == 2_000
    env = seq[3].make()
    assert env.unwrapped.task_name == "big_leg"
    env.close()


def test_env_pickles_with_its_task() -> None:
    env = cheetah.HalfCheetahBodyEnv("big_torso")
    clone = pickle.loads(pickle.dumps(env))
    assert clone.task_name == "big_torso"
    np.testing.assert_array_equal(clone.model.geom_size, env.model.geom_size)
