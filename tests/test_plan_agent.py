"""The MPC agent: objective, rollouts, weight fetching, resets, and control of a point mass."""

from __future__ import annotations

import pytest
import torch

from hypercrl import ContinualDynamics
from hypercrl.plan import (
    CEM,
    MPPI,
    CEMConfig,
    ICEMConfig,
    MPCAgent,
    MPPIConfig,
    StepRollout,
    make_optimizer,
)

DT = 0.1
GOAL = torch.tensor([0.8, -0.5])


def point_mass(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """2-D point mass, state [N, 4] = (x, y, vx, vy), action [N, 2] = force; semi-implicit Euler."""
    vel = state[:, 2:] + DT * action
    return torch.cat([state[:, :2] + DT * vel, vel], dim=1)


def reach_reward(state, action, next_state):
    """Closeness of the next position to GOAL, with a little damping and effort cost; [N]."""
    dist = (next_state[:, :2] - GOAL).norm(dim=1)
    return -dist - 0.1 * next_state[:, 2:].norm(dim=1) - 0.01 * action.pow(2).sum(1)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


PLANNERS = {
    "cem": CEMConfig(population=200, elites=20, iterations=4, init_std=0.5, warm_start=True),
    "icem": ICEMConfig(population=200, elites=20, iterations=4, init_std=0.5),
    "mppi": MPPIConfig(population=200, iterations=2, temperature=0.05, noise_sigma=0.4,
                       smoothing=0.5),
}


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_mpc_on_true_dynamics_brings_a_point_mass_to_its_goal(name):
    opt = make_optimizer(PLANNERS[name], [-1.0, -1.0], [1.0, 1.0], 15, generator=_gen())
    agent = MPCAgent(point_mass, reach_reward, opt)
    state = torch.zeros(4)
    for _ in range(60):
        action = agent.act(state)
        assert action.shape == (2,) and (action.abs() <= 1).all()
        state = point_mass(state[None], action[None])[0]
    assert (state[:2] - GOAL).norm() < 0.05
    assert state[2:].norm() < 0.15  # and it stays there


def test_objective_sums_rewards_along_the_rollout():
    opt = CEM([-1.0, -1.0], [1.0, 1.0], 5, generator=_gen())
    agent = MPCAgent(point_mass, reach_reward, opt, discount=0.9)
    state = torch.tensor([0.1, 0.2, -0.3, 0.4])
    actions = torch.rand(7, 5, 2, generator=_gen(1)) * 2 - 1
    agent.plan(state)  # sets the current state
    expected = torch.zeros(7)
    s = state.expand(7, 4)
    for h in range(5):
        s2 = point_mass(s, actions[:, h])
        expected += 0.9**h * reach_reward(s, actions[:, h], s2)
        s = s2
    torch.testing.assert_close(agent._objective(actions), expected)


def test_predict_plan_gives_the_path_and_rewards_the_planner_scored():
    opt = CEM([-1.0, -1.0], [1.0, 1.0], 5, generator=_gen())
    agent = MPCAgent(point_mass, reach_reward, opt, discount=0.9)
    state = torch.tensor([0.1, 0.2, -0.3, 0.4])
    with pytest.raises(ValueError, match="before plan"):
        agent.predict_plan(torch.zeros(5, 2))
    plan = agent.plan(state)
    path, rewards = agent.predict_plan(plan)
    assert path.shape == (1, 5, 4) and rewards.shape == (5,)
    s = state[None]
    for h in range(5):
        s2 = point_mass(s, plan[h][None])
        torch.testing.assert_close(path[0, h], s2[0])
        torch.testing.assert_close(rewards[h], reach_reward(s, plan[h][None], s2)[0])
        s = s2
    weights = 0.9 ** torch.arange(5.0)
    torch.testing.assert_close(weights @ rewards, agent._objective(plan[None])[0])
    with pytest.raises(ValueError, match=r"\[H, A\] = \[5, 2\]"):
        agent.predict_plan(plan[:3])


def test_step_rollout_equals_stepping():
    actions = torch.randn(3, 4, 2, generator=_gen())
    state = torch.randn(4, generator=_gen(1))
    out = StepRollout(point_mass).rollout(state, actions)
    s = state.expand(3, 4)
    for h in range(4):
        s = point_mass(s, actions[:, h])
        torch.testing.assert_close(out[:, h], s)


class CountingSource:
    """A PredictorSource over the point mass that counts weight fetches per task."""

    def __init__(self) -> None:
        self.fetches: list[int] = []
        self.rollouts = 0

    def predictor(self, task: int, device=None):
        self.fetches.append(task)
        source = self

        class Pred:
            def __call__(self, s, a):
                return point_mass(s, a)

            def rollout(self, s, a):
                source.rollouts += 1
                return StepRollout(point_mass).rollout(s, a)

        return Pred()


def test_weights_are_fetched_per_task_and_round_never_per_step():
    source = CountingSource()
    opt = CEM([-1.0, -1.0], [1.0, 1.0], 5, CEMConfig(population=20, elites=4, iterations=3),
              generator=_gen())
    agent = MPCAgent(source, reach_reward, opt)
    with pytest.raises(ValueError, match="set_task"):
        agent.act(torch.zeros(4))
    agent.set_task(0)
    for _ in range(5):
        agent.act(torch.zeros(4))
    assert source.fetches == [0]
    assert source.rollouts == 5 * 3  # the predictor's own rollout, once per CEM iteration
    agent.refresh()  # after a training round
    agent.act(torch.zeros(4))
    agent.set_task(1)
    agent.act(torch.zeros(4))
    assert source.fetches == [0, 0, 1]


def test_resets_between_episodes_and_tasks():
    opt = MPPI([-1.0, -1.0], [1.0, 1.0], 5, MPPIConfig(population=50), generator=_gen())
    agent = MPCAgent(CountingSource(), reach_reward, opt, task=0)
    centre = torch.zeros(5, 2)
    agent.act(torch.zeros(4))
    assert not torch.equal(opt.mean, centre)  # warm-started
    agent.reset()
    assert torch.equal(opt.mean, centre)
    agent.act(torch.zeros(4))
    agent.set_task(1)
    assert torch.equal(opt.mean, centre)


def test_plans_through_continual_dynamics():
    # learn the point mass for one task briefly, then plan through its generated weights
    g = _gen(3)
    states = torch.randn(500, 4, generator=g)
    actions = torch.rand(500, 2, generator=g) * 2 - 1
    cd = ContinualDynamics(state_dim=4, action_dim=2, hidden=(32, 32), seed=0)
    cd.begin_task()
    cd.fit(states, actions, point_mass(states, actions), steps=20)
    opt = CEM([-1.0, -1.0], [1.0, 1.0], 8, CEMConfig(population=64, elites=8, iterations=2),
              generator=_gen())
    agent = MPCAgent(cd, reach_reward, opt, task=0)
    action = agent.act(torch.zeros(4))
    assert action.shape == (2,) and torch.isfinite(action).all()
    assert (action.abs() <= 1).all()


def test_bad_agent_arguments():
    opt = CEM([-1.0], [1.0], 3, generator=_gen())
    with pytest.raises(ValueError, match="discount"):
        MPCAgent(point_mass, reach_reward, opt, discount=0.0)
    agent = MPCAgent(point_mass, reach_reward, opt)
    with pytest.raises(ValueError, match="obs"):
        agent.act(torch.zeros(2, 4))


@pytest.mark.slow
def test_compiled_objective_equals_eager():
    source = ContinualDynamics(state_dim=4, action_dim=2, hidden=(16, 16), seed=0)
    source.begin_task()

    def make(compile_: bool) -> MPCAgent:
        opt = CEM([-1.0, -1.0], [1.0, 1.0], 3, CEMConfig(population=16, elites=4, iterations=2),
                  generator=_gen())
        return MPCAgent(source, reach_reward, opt, task=0, compile=compile_)

    eager, compiled = make(False), make(True)
    state = torch.tensor([0.1, 0.2, -0.3, 0.4])
    torch.testing.assert_close(compiled.act(state), eager.act(state))
    actions = torch.rand(16, 3, 2, generator=_gen(1)) * 2 - 1
    torch.testing.assert_close(compiled._objective(actions), eager._objective(actions))
