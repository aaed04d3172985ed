"""Checks every push and door task passes: Gymnasium/SB3 checkers, reward agreement with the
task sequence (numpy and torch), determinism, rendering, argument errors."""

from __future__ import annotations

import importlib
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from envtools import BACKENDS, CASES, FAMILY_IDS, rollout
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("family", "task"), CASES)
def test_checkers_pass(family: str, task: int, backend: str) -> None:
    env = gym.make(FAMILY_IDS[family], task=task, backend=backend, render_mode="rgb_array")
    assert env.unwrapped.backend_name == backend
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker's warning is a failure here
        gym_check_env(env.unwrapped, skip_render_check=False)
        sb3_check_env(env.unwrapped, warn=True)
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("family", "task"), CASES)
def test_env_reward_equals_sequence_reward(family: str, task: int, backend: str) -> None:
    seq = envs.sequence(family, backend=backend)
    env = seq[task].make()
    states, actions, nexts, rewards = rollout(env, seed=task, steps=15)
    env.close()
    fn = seq[task].reward
    np.testing.assert_allclose(fn(states, actions, nexts), rewards, rtol=1e-5, atol=1e-5)
    as_torch = [torch.as_tensor(x, dtype=torch.float64) for x in (states, actions, nexts)]
    got = fn(*as_torch)
    assert isinstance(got, torch.Tensor) and got.shape == (len(rewards),)
    np.testing.assert_allclose(got.numpy(), rewards, rtol=1e-5, atol=1e-5)
    # batched over several leading dimensions, as a planner's [P, H, S] states
    folded = fn(*(x.reshape(3, 5, -1) for x in as_torch))
    np.testing.assert_allclose(folded.reshape(-1).numpy(), rewards, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_deterministic_under_seed(family: str) -> None:
    env = gym.make(FAMILY_IDS[family], task=1)
    first = rollout(env, seed=7, steps=10)
    again = rollout(env, seed=7, steps=10)
    other = rollout(gym.make(FAMILY_IDS[family], task=1), seed=8, steps=10)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0][0], other[0][0])  # the seed changes the start


@pytest.mark.parametrize("backend", BACKENDS)
def test_trajectory_digest_tells_runs_apart_to_the_bit(backend: str) -> None:
    # `python -m envs.checks digest`: what a refactor of the envs compares before and after
    from envs.checks import trajectory_digest

    first = trajectory_digest("push", backend, 0, steps=110)  # one reset inside
    assert trajectory_digest("push", backend, 0, steps=110) == first
    assert trajectory_digest("push", backend, 0, steps=109) != first
    assert trajectory_digest("push", backend, 1, steps=110) != first


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_episode_length_and_spaces(family: str) -> None:
    seq = envs.sequence(family)
    env = seq[0].make()
    assert env.observation_space.shape == (seq.observation_dim,)
    np.testing.assert_array_equal(env.action_space.low, seq.action_low)
    np.testing.assert_array_equal(env.action_space.high, seq.action_high)
    env.reset(seed=0)
    zero = np.zeros(seq.action_dim, np.float32)
    for t in range(seq.episode_steps):
        _, _, terminated, truncated, info = env.step(zero)
        assert not terminated
        assert truncated == (t == seq.episode_steps - 1)
        assert isinstance(info["success"], bool)


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_rendered_frame_shows_the_scene(family: str) -> None:
    env = gym.make(FAMILY_IDS[family], task=0, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    assert frame.std() > 20.0  # not blank
    env.step(env.action_space.sample() * 0 + 1)
    assert not np.array_equal(env.render(), frame)  # the camera sees the robot move
    plain = gym.make(FAMILY_IDS[family], task=0)
    plain.reset(seed=0)
    assert plain.render() is None


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_bad_arguments_list_the_valid_ones(family: str) -> None:
    with pytest.raises(ValueError, match=r"valid: 0 or .*4 or"):
        gym.make(FAMILY_IDS[family], task=5)
    with pytest.raises(ValueError, match="valid"):
        gym.make(FAMILY_IDS[family], task="nope")
    with pytest.raises(ValueError, match=r"valid: \['mujoco', 'pybullet'\]"):
        gym.make(FAMILY_IDS[family], backend="bullet")
    with pytest.raises(ValueError, match="render_mode"):
        gym.make(FAMILY_IDS[family], render_mode="human")


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_sequence_tasks_make_their_env(family: str) -> None:
    seq = envs.sequence(family, backend="mujoco")
    assert len(seq) == 5 and [t.index for t in seq] == list(range(5))
    for task in seq:
        env = task.make()
        assert env.unwrapped.task == task.index
        assert env.unwrapped.task_name == task.name
        env.close()
    with pytest.raises(ValueError, match="valid"):
        envs.sequence(family, backend="gazebo")


@pytest.mark.parametrize(
    ("env_id", "module"),
    [("HyperCRL/Push-v0", "envs.push"), ("HyperCRL/Door-v0", "envs.door"),
     ("HyperCRL/HalfCheetahBody-v0", "envs.cheetah")],
)
def test_registered_episode_length_is_the_family_s(env_id: str, module: str) -> None:
    steps = importlib.import_module(module).EPISODE_STEPS
    assert gym.spec(env_id).max_episode_steps == steps
    env = gym.make(env_id, task=0)
    env.reset(seed=0)
    truncated, n = False, 0
    while not truncated:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        n += 1
        assert not terminated
    env.close()
    assert n == steps
