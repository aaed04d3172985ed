"""Batched evaluation: every episode of an evaluation steps together through one planner call
per iteration, and each episode's numbers are exactly those of evaluating it alone."""

from __future__ import annotations

import os

import gymnasium
import numpy as np
import pytest
import torch

from hypercrl import ContinualDynamics, cli
from hypercrl.learners import Learner, Transition
from hypercrl.loop import ContinualRun
from hypercrl.plan import PLANNERS, MPCAgent, make_optimizer, plan_across
from hypercrl.plan.lockstep import plan_together

STEPS = 12  # env steps per evaluation episode


def _run(tmp_path, planner="cem", method="finetune", sets=()):
    """A one-task push run on the smoke profile whose learner has fitted task 0 on random
    transitions (a model that plans, not one that plans well)."""
    plans = [f"planner={planner}"] if method != "sb3-sac" else []  # SAC does not plan
    cfg = cli.resolve_config("push", "mujoco", method, "smoke",
                             ["num_tasks=1", *plans, f"episode_steps={STEPS}", *sets])
    run = ContinualRun(cfg, cli._sequence("push", "mujoco"), str(tmp_path), quiet=True,
                       tensorboard=False)
    learner = run.learner
    learner.begin_task(0)
    if method != "sb3-sac":
        rng = np.random.default_rng(0)
        for _ in range(cfg.init_random_steps + 1):  # up to the first retrain
            obs = rng.standard_normal(learner.s_dim).astype(np.float32)
            action = learner.act(obs)
            learner.observe(Transition(obs, action, 0.0, obs + 0.1 * action.sum(), False,
                                       False))
        assert learner.fitted
    return run


def _one_by_one(run, monkeypatch, task, episodes, **kw):
    """Evaluation as before batching: the learner's per-episode policy, episode after episode."""
    with monkeypatch.context() as m:
        m.setattr(run.learner, "batch_policy_tasks", lambda tasks, episodes: None)
        return run.evaluate_task(task, episodes, **kw)


def _capture_videos(monkeypatch, written):
    """mp4 videos kept as their frames in ``written`` (path -> frames), not encoded."""
    import hypercrl.video

    class Captured:
        def __init__(self, path, fps=10):
            self.path = path
            written[path] = []

        def append(self, frame):
            written[self.path].append(frame)

        def close(self):
            return self.path

        def abort(self):
            pass

    monkeypatch.setattr(hypercrl.video, "Mp4Writer", Captured)


def _count_lockstep_calls(monkeypatch):
    """The number of plans driven together by each lockstep call of the agents, in order."""
    import hypercrl.plan.agent

    calls = []
    real = hypercrl.plan.agent.plan_together
    monkeypatch.setattr(hypercrl.plan.agent, "plan_together",
                        lambda plans, objective: calls.append(len(plans))
                        or real(plans, objective))
    return calls


# CEM as the paper runs it, CEM with a warm start, iCEM (coloured noise, kept elites carried
# from plan to plan, warm start) and MPPI (warm start): every kind of per-episode planner state
@pytest.mark.parametrize("planner,sets", [
    ("cem", ()), ("cem", ("warm_start=true", "return_mode=best")), ("icem", ()), ("mppi", ()),
])
def test_batched_evaluation_equals_episode_by_episode(planner, sets, tmp_path, monkeypatch):
    run = _run(tmp_path, planner, sets=sets)
    calls = _count_lockstep_calls(monkeypatch)
    batched = run.evaluate_task(0, 3)
    assert calls == [3] * STEPS  # one call per env step, for all three episodes
    alone = _one_by_one(run, monkeypatch, 0, 3)
    assert batched == alone  # bit for bit
    returns, _ = batched
    assert len(set(returns)) == 3  # three different episodes (seeds), not one repeated
    assert run.evaluate_task(0, 3) == batched  # and again: nothing carried between evaluations
    run.close()


def test_an_episode_that_ends_early_leaves_the_others_running(tmp_path, monkeypatch):
    run = _run(tmp_path, "icem")
    full = run.evaluate_task(0, 3)
    steps = [0, 0, 0]

    class Counted(gymnasium.Wrapper):
        def __init__(self, env, e):
            super().__init__(env)
            self.e = e

        def step(self, action):
            steps[self.e] += 1
            return super().step(action)

    for e in range(3):  # episode 1's env truncates after 4 steps
        env = Counted(run.tasks[0].make(), e)
        run._eval_envs[(0, e, False)] = gymnasium.wrappers.TimeLimit(env, 4) if e == 1 else env
    returns, successes = run.evaluate_task(0, 3)
    assert steps == [STEPS, 4, STEPS]
    assert returns[0] == full[0][0] and returns[2] == full[0][2]
    assert returns[1] != full[0][1]
    # and episode 1's short return is the one it has alone
    assert (returns, successes) == _one_by_one(run, monkeypatch, 0, 3)
    run.close()


def test_the_video_records_episode_0_and_changes_no_number(tmp_path, monkeypatch):

    run = _run(tmp_path, "cem")
    written = {}
    _capture_videos(monkeypatch, written)
    path = str(tmp_path / "e0.mp4")
    assert run.evaluate_task(0, 2, video_path=path) == run.evaluate_task(0, 2)
    frames = written[path]
    assert len(frames) == STEPS and frames[0].ndim == 3 and frames[0].shape[-1] == 3
    run.close()


def test_evaluation_leaves_the_training_planner_alone(tmp_path):
    run = _run(tmp_path, "icem")
    optimizer = run.learner.agent.optimizer
    before = (optimizer.mean, optimizer.generator.get_state())
    run.evaluate_task(0, 2)
    assert torch.equal(optimizer.mean, before[0])
    assert torch.equal(optimizer.generator.get_state(), before[1])
    run.close()


def test_sac_evaluates_episode_by_episode(tmp_path):
    run = _run(tmp_path, method="sb3-sac")
    assert run.learner.batch_policy(0, 2) is None
    returns, successes = run.evaluate_task(0, 2)
    assert len(returns) == len(successes) == 2 and all(np.isfinite(returns))
    assert returns[0] != returns[1]  # each episode from its own seed
    assert run.evaluate_task(0, 2) == (returns, successes)
    run.close()


@pytest.mark.parametrize("planner", sorted(PLANNERS))
def test_plan_many_equals_planning_alone_at_pusher_size(planner):
    """The original's model and planner sizes (hidden 200 x 200, H = 20, K = 500), where one
    [H] x [H, E * K] product of the discounted sum would round some returns differently from
    [H] x [H, K]; five plans in a row, so warm starts and kept elites are compared too."""
    s_dim, a_dim, episodes = 10, 2, 4
    dynamics = ContinualDynamics(s_dim, a_dim, "finetune", hidden=(200, 200))
    dynamics.begin_task()
    rng = np.random.default_rng(0)
    s, a = rng.standard_normal((2, 200, s_dim)).astype(np.float32), rng.standard_normal(
        (200, a_dim)).astype(np.float32)
    dynamics.fit(s[0], a, s[0] + 0.1 * s[1], steps=10)

    def reward(state, action, next_state):
        return -(next_state**2).sum(1) - 0.1 * (action**2).sum(1)

    config = PLANNERS[planner](population=500, **({} if planner == "mppi" else {"elites": 40}))

    def optimizers():
        return [make_optimizer(config, [-1.0] * a_dim, [1.0] * a_dim, 20,
                               generator=torch.Generator().manual_seed(e))
                for e in range(episodes)]

    agent = MPCAgent(dynamics, reward, optimizers()[0], task=0, discount=0.99)
    alone, together = optimizers(), optimizers()
    states = torch.as_tensor(rng.standard_normal((episodes, s_dim)), dtype=torch.float32)
    for _ in range(5):
        expected = []
        for state, optimizer in zip(states, alone, strict=True):
            agent.optimizer = optimizer
            expected.append(agent.plan(state))
        plans = agent.plan_many(states, together)
        assert torch.equal(plans, torch.stack(expected))
        states = states + 0.1 * plans[:, 0].sum(1, keepdim=True)


def test_plans_of_different_sizes_and_lengths_run_together():
    """CEM (2 populations of 16), iCEM (decaying populations, 4 + the mean) and MPPI (1 of 12)
    in lockstep: each plan's populations, returns and result are those it has alone."""
    configs = [PLANNERS["cem"](population=16, elites=4, iterations=2),
               PLANNERS["icem"](population=20, elites=5, iterations=4),
               PLANNERS["mppi"](population=12, iterations=1)]
    targets = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(0))

    def make():
        return [make_optimizer(c, [-1.0, -1.0], [1.0, 1.0], 5,
                               generator=torch.Generator().manual_seed(7)) for c in configs]

    alone = [o.optimize(lambda a, t=t: -(a - t).pow(2).sum((1, 2)))
             for o, t in zip(make(), targets, strict=True)]
    calls = []

    def objective(actions, owners, sizes):
        calls.append((list(owners), list(sizes)))
        rows = torch.repeat_interleave(torch.tensor(owners), torch.tensor(sizes))
        return -(actions - targets[rows]).pow(2).sum((1, 2))

    together = plan_together([o.plan_steps() for o in make()], objective)
    for a, b in zip(alone, together, strict=True):
        assert torch.equal(a, b)
    assert calls[0] == ([0, 1, 2], [16, 20 + 1, 12])  # iCEM: its kept-elite slot is sampled
    assert [owners for owners, _ in calls] == [[0, 1, 2], [0, 1], [1], [1]]


def _trained_tasks(tmp_path, method="hnet", tasks=3, sets=()):
    """A push run on the smoke profile whose learner has fitted ``tasks`` tasks, each on its
    own random transitions, so that every task's model differs."""
    cfg = cli.resolve_config("push", "mujoco", method, "smoke",
                             [f"num_tasks={tasks}", "planner=icem",
                              f"episode_steps={STEPS}", *sets])
    run = ContinualRun(cfg, cli._sequence("push", "mujoco"), str(tmp_path), quiet=True,
                       tensorboard=False)
    learner = run.learner
    rng = np.random.default_rng(0)
    for t in range(tasks):
        learner.begin_task(t)
        for _ in range(cfg.init_random_steps + 1):  # up to the first retrain
            obs = rng.standard_normal(learner.s_dim).astype(np.float32)
            action = learner.act(obs)
            learner.observe(Transition(obs, action, 0.0, obs + (t + 1) * 0.1 * action.sum(),
                                       False, False))
        learner.end_task()
    return run


def test_every_seen_task_is_evaluated_in_one_planner_call_per_step(tmp_path, monkeypatch):
    """All episodes of all three tasks step together, one lockstep call per env step, and
    each task's numbers are those of evaluating that task alone, and episode by episode."""
    run = _trained_tasks(tmp_path)
    calls = _count_lockstep_calls(monkeypatch)
    together = run.evaluate_tasks([0, 1, 2], 2)
    assert calls == [6] * STEPS
    calls.clear()
    alone = [run.evaluate_task(j, 2) for j in range(3)]
    assert calls == [2] * (3 * STEPS)
    assert [(r, s) for r, s, _ in together] == alone  # bit for bit
    assert [_one_by_one(run, monkeypatch, j, 2) for j in range(3)] == alone
    returns = [r for task in alone for r in task[0]]
    assert len(set(returns)) == 6  # six different episodes, not one model for all tasks
    run.close()


@pytest.mark.parametrize("sets", [
    ("task_free_eval=true", "infer_window=3"),
    # particles whose members are drawn anew every step from a generator seeded per rollout:
    # each plan rolled out on its own, as alone
    ("task_free_eval=true", "infer_window=3", "ensemble=3", "propagation=tsinf"),
    ("ensemble=3", "propagation=tsinf"),
])
def test_every_task_at_once_equals_task_by_task_and_one_by_one(sets, tmp_path, monkeypatch):
    run = _trained_tasks(tmp_path, sets=sets)
    calls = _count_lockstep_calls(monkeypatch)
    together = run.evaluate_tasks([0, 1, 2], 2)
    assert calls == [6] * STEPS
    for j, (returns, successes, usage) in enumerate(together):
        assert (returns, successes) == run.evaluate_task(j, 2)
        assert usage == run.last_usage
        assert sum(usage) == (2 * STEPS if "task_free_eval=true" in sets else 0)
        if "task_free_eval=true" not in sets:  # a task-free policy has no per-episode form
            assert (returns, successes) == _one_by_one(run, monkeypatch, j, 2)
    run.close()


def test_task_free_usage_is_counted_per_episode(monkeypatch):
    """Each episode's steps count for the task it planned with; ``usage_of`` sums the listed
    episodes only (the loop's row of one task)."""
    from types import SimpleNamespace

    import hypercrl.learners.taskfree
    from hypercrl.learners.taskfree import TaskFreeBatchPolicy

    planned = []  # the agents of each call, in row order
    monkeypatch.setattr(hypercrl.learners.taskfree, "plan_across",
                        lambda agents, obs, opts: planned.append(agents)
                        or torch.zeros(len(obs), 1, 1))
    # the task an episode's window points at: its observation's first entry
    dyn = SimpleNamespace(state_dim=1, action_dim=1, infer_task=lambda s, a, s2: SimpleNamespace(
        task=int(s2[-1][0])))
    agents = [SimpleNamespace(name=t) for t in range(3)]
    optimizers = [SimpleNamespace(generator=torch.Generator(), reset=lambda: None)
                  for _ in range(4)]
    policy = TaskFreeBatchPolicy(dyn, agents, optimizers, window=5, every=1, start_task=0)
    policy.reset([0, 1, 2, 3])
    obs = np.array([[2.0], [1.0], [2.0], [0.0]], np.float32)
    for _ in range(3):  # step 1 plans with the start task, then with the inferred ones
        policy(obs, [0, 1, 2, 3])
    policy(obs[:2], [0, 1])  # episodes 2 and 3 have ended
    assert [a.name for a in planned[0]] == [0, 0, 0, 0]
    assert [a.name for a in planned[1]] == [2, 1, 2, 0]
    assert policy.usage_of([0, 1]) == [2, 3, 3]
    assert policy.usage_of([2, 3]) == [4, 0, 2]
    assert policy.usage == [6, 3, 5]


def test_evaluation_after_a_task_plans_every_seen_task_together(tmp_path, monkeypatch):
    """The loop's evaluation after task 1 is one joint evaluation of tasks 0 and 1."""
    run = _trained_tasks(tmp_path, tasks=2)
    seen = []
    real = ContinualRun.evaluate_tasks
    monkeypatch.setattr(ContinualRun, "evaluate_tasks",
                        lambda self, tasks, episodes, *a, **kw: seen.append(list(tasks))
                        or real(self, tasks, episodes, *a, **kw))
    run._evaluate(1, final=True)
    assert seen == [[0, 1]]
    rows = run.metrics["returns"]["1"]
    assert rows == [run.evaluate_task(j, run.cfg.eval_episodes)[0] for j in range(2)]
    run.close()


def test_plan_across_plans_each_state_as_its_own_agent_would():
    """Two tasks' agents (different models, one reward each) and CEM/iCEM plans of several
    states of each, interleaved: every plan is the one its agent makes alone."""
    s_dim, a_dim = 4, 2
    dynamics = ContinualDynamics(s_dim, a_dim, "hnet", hidden=(32, 32))
    rng = np.random.default_rng(0)
    for t in range(2):
        dynamics.begin_task()
        s, a = rng.standard_normal((100, s_dim)).astype(np.float32), rng.standard_normal(
            (100, a_dim)).astype(np.float32)
        dynamics.fit(s, a, s + (t + 1) * 0.1 * a.sum(1, keepdims=True), steps=5)
        dynamics.end_task(s, a, s)

    def reward_to(target):
        return lambda s, a, s2: -(s2 - target).pow(2).sum(1)

    # plans of different lengths and sizes, so that the plans still running, and their
    # order, change from round to round: CEM 2 iterations, iCEM 4, MPPI 1
    configs = [PLANNERS["icem"](population=30, elites=5, iterations=4),
               PLANNERS["cem"](population=20, elites=4, iterations=2),
               PLANNERS["mppi"](population=12, iterations=1)]

    def optimizers(n):
        return [make_optimizer(configs[e % 3], [-1.0] * a_dim, [1.0] * a_dim, 6,
                               generator=torch.Generator().manual_seed(e)) for e in range(n)]

    agents = [MPCAgent(dynamics, reward_to(float(t)), optimizers(1)[0], task=t)
              for t in range(2)]
    owner = [0, 1, 1, 0, 1]  # the task of each state, interleaved
    rounds = _count_rounds(agents, owner, optimizers(5))
    assert len({tuple(r) for r in rounds}) >= 3  # the plans still running differ by round
    states = torch.as_tensor(rng.standard_normal((5, s_dim)), dtype=torch.float32)
    alone, together = optimizers(5), optimizers(5)
    for _ in range(3):  # warm starts and kept elites carried from plan to plan
        expected = []
        for e, state in enumerate(states):
            agents[owner[e]].optimizer = alone[e]
            expected.append(agents[owner[e]].plan(state))
        plans = plan_across([agents[t] for t in owner], states, together)
        assert torch.equal(plans, torch.stack(expected))
        states = states + 0.1 * plans[:, 0].sum(1, keepdim=True)
    with pytest.raises(ValueError, match="2 agents but 3 optimizers"):
        plan_across(agents, states[:2], optimizers(3))
    other = MPCAgent(dynamics, reward_to(0.0), make_optimizer(
        configs[0], [-1.0] * a_dim, [1.0] * a_dim, 4), task=0)
    with pytest.raises(ValueError, match="share their horizon"):
        plan_across([agents[0], other], states[:2], optimizers(2))
    unset = MPCAgent(dynamics, reward_to(0.0), optimizers(1)[0])
    with pytest.raises(ValueError, match="no task set"):
        plan_across([agents[0], unset], states[:2], optimizers(2))


def _count_rounds(agents, owner, optimizers):
    """The plans (their indices) each lockstep round of ``plan_across`` scores."""
    import hypercrl.plan.agent

    rounds = []
    real = hypercrl.plan.agent.plan_together

    def spy(plans, objective):
        return real(plans, lambda a, owners, sizes: rounds.append(list(owners))
                    or objective(a, owners, sizes))

    hypercrl.plan.agent.plan_together = spy
    try:
        states = torch.zeros(len(owner), 4)  # the test's state size
        plan_across([agents[t] for t in owner], states, optimizers)
    finally:
        hypercrl.plan.agent.plan_together = real
    return rounds


def test_each_tasks_video_shows_its_own_episode(tmp_path, monkeypatch):

    run = _trained_tasks(tmp_path, tasks=2)
    written = {}
    _capture_videos(monkeypatch, written)
    paths = {j: str(tmp_path / f"t{j}.mp4") for j in range(2)}
    together = run.evaluate_tasks([0, 1], 2, paths)
    both = dict(written)
    written.clear()
    alone = [run.evaluate_task(j, 2, video_path=paths[j]) for j in range(2)]
    assert [(r, s) for r, s, _ in together] == alone
    for j in range(2):
        assert len(both[paths[j]]) == STEPS
        assert all(np.array_equal(a, b) for a, b in zip(both[paths[j]], written[paths[j]],
                                                        strict=True))
    assert not np.array_equal(both[paths[0]][-1], both[paths[1]][-1])
    run.close()


def test_a_learner_with_only_a_one_task_batch_policy_is_evaluated_task_by_task(tmp_path,
                                                                              monkeypatch):
    """A learner written before ``batch_policy_tasks`` (it overrides ``batch_policy``): its
    batch policy still steps each task's episodes together."""
    from hypercrl.learners.model_based import ModelBasedLearner

    run = _trained_tasks(tmp_path, tasks=2)
    expected = [run.evaluate_task(j, 2) for j in range(2)]

    class Old(ModelBasedLearner):
        def batch_policy(self, task, episodes):
            return ModelBasedLearner.batch_policy_tasks(self, [task], episodes)

    Old.batch_policy_tasks = Learner.batch_policy_tasks
    run.learner.__class__ = Old
    calls = _count_lockstep_calls(monkeypatch)
    together = run.evaluate_tasks([0, 1], 2)
    assert calls == [2] * (2 * STEPS)  # task by task, each task's two episodes together
    assert [(r, s) for r, s, _ in together] == expected
    run.close()


def test_an_evaluation_that_fails_leaves_no_video_and_no_temporary_file(tmp_path, monkeypatch):
    """Videos are encoded while the episodes run; an error midway removes what was begun."""
    run = _trained_tasks(tmp_path, tasks=2)
    env = run._eval_env(1, 0, render=True)
    real, count = env.step, {"n": 0}

    def failing(action):
        count["n"] += 1
        if count["n"] == STEPS // 2:
            raise RuntimeError("the simulator fell over")
        return real(action)

    monkeypatch.setattr(env, "step", failing)
    out = tmp_path / "videos"
    with pytest.raises(RuntimeError, match="fell over"):
        run.evaluate_tasks([0, 1], 2, {j: str(out / f"t{j}.mp4") for j in range(2)})
    assert os.listdir(out) == []  # neither the videos nor their temporary files
    run.close()
