"""Task identity not given: task-free evaluation and new-task detection in the loop.

On the turned-point sequence (tests/toyseq.py: three tasks that turn the action by 0, 120
and 240 degrees), with the smoke profile's networks and a schedule long enough to learn.
"""

import json
import os

import numpy as np
import pytest
import torch
import toyseq

from hypercrl import ContinualDynamics
from hypercrl.config import from_sequence
from hypercrl.learners.taskfree import TaskDetector
from hypercrl.loop import ContinualRun, load_checkpoint
from hypercrl.metrics import detection_summary

SCHEDULE = {"init_random_steps": 100, "mpc_steps": 100, "retrain_every": 50,
            "train_iters": 200, "episode_steps": 10, "heldout_size": 50,
            "infer_window": 10, "infer_every": 2, "detect_patience": 2}
STEPS_PER_TASK = 200


def _run(tmp_path, name, method="hnet", **kw):
    seq = toyseq.sequence()
    cfg = from_sequence(seq, "smoke", method, **{**SCHEDULE, **kw})
    run_dir = tmp_path / name
    run_dir.mkdir()
    run = ContinualRun(cfg, seq, str(run_dir), quiet=True, tensorboard=False)
    run.run()
    return run, _metrics(run_dir)


def _metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def inferred(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("inferred"), "run", task_boundaries="inferred")


def test_a_learner_not_told_the_task_finds_every_change(inferred):
    run, metrics = inferred
    # one new task per real change, found within the first two windows of the new task
    assert [(d["task"], d["learner_task"]) for d in metrics["detections"]] == [(1, 1), (2, 2)]
    summary = metrics["detection"]
    assert summary["detected"] == summary["changes"] == 2
    assert summary["false_alarms"] == 0
    assert all(0 < d <= 2 * SCHEDULE["infer_window"] for d in summary["delays"])
    assert run.learner.dynamics.num_tasks == 3
    # the learner's third task is the one it is learning: it was never told the run ended
    assert run.learner.active_task == 2


def test_evaluation_without_the_task_plans_with_the_right_model(inferred):
    _, metrics = inferred
    usage = np.array(metrics["task_usage"]["2"])  # after the last task: [true task, used task]
    assert usage.shape == (3, 3)
    assert np.all(usage.argmax(1) == [0, 1, 2]), usage
    assert usage.trace() >= 0.8 * usage.sum(), usage


def test_task_free_evaluation_with_given_boundaries(tmp_path, inferred):
    _, given = _run(tmp_path, "given")
    _, free = _run(tmp_path, "free", task_free_eval=True)
    assert given["returns"]["0"] == free["returns"]["0"]  # one task: nothing to infer
    assert "task_usage" not in given or not given["task_usage"]
    usage = np.array(free["task_usage"]["2"])
    assert np.all(usage.argmax(1) == [0, 1, 2]), usage
    # the training is the same whether or not evaluation infers the task
    assert free["model_error_1"] == given["model_error_1"]
    assert free["detections"] == given["detections"] == []


def test_inferred_run_resumes_exactly(tmp_path, inferred, monkeypatch):
    _, full = inferred
    seq = toyseq.sequence()
    cfg = from_sequence(seq, "smoke", "hnet", task_boundaries="inferred", checkpoint_every=20,
                        **SCHEDULE)
    full_cfg = from_sequence(seq, "smoke", "hnet", task_boundaries="inferred", **SCHEDULE)
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    run = ContinualRun(cfg, seq, str(run_dir), quiet=True, tensorboard=False)
    real = type(run.learner).observe
    count = {"n": 0}

    def observe(self, tr):  # killed in task 1, after its change was detected
        count["n"] += 1
        if count["n"] == STEPS_PER_TASK + 65:
            raise KeyboardInterrupt
        return real(self, tr)

    monkeypatch.setattr(type(run.learner), "observe", observe)
    with pytest.raises(KeyboardInterrupt):
        run.run()
    monkeypatch.setattr(type(run.learner), "observe", real)
    state = load_checkpoint(str(run_dir))
    assert state["progress"]["task"] == 1 and state["progress"]["step"] == 60
    resumed = ContinualRun(cfg, seq, str(run_dir), quiet=True, tensorboard=False)
    resumed.load_state_dict(state)
    resumed.run()
    got = _metrics(run_dir)
    assert cfg.checkpoint_every != full_cfg.checkpoint_every  # only the checkpoints differ
    for key in ("returns", "detections", "task_usage", "detection"):
        assert got[key] == full[key], key


def test_task_inference_settings_are_checked():
    seq = toyseq.sequence()
    with pytest.raises(ValueError, match="task_boundaries='inferred': method 'sb3-sac'"):
        from_sequence(seq, "smoke", "sb3-sac", task_boundaries="inferred")
    with pytest.raises(ValueError, match="task_free_eval=true: method 'sb3-sac'"):
        from_sequence(seq, "smoke", "sb3-sac", task_free_eval=True)
    with pytest.raises(ValueError, match="heldout_fraction must be > 0"):
        from_sequence(seq, "smoke", "hnet", task_boundaries="inferred", heldout_fraction=0.0)
    with pytest.raises(ValueError, match="task_boundaries must be one of"):
        from_sequence(seq, "smoke", "hnet", task_boundaries="guessed")
    for key, value in (("detect_quantile", 0.0), ("detect_margin", -1.0),
                       ("infer_window", 0), ("detect_patience", 0)):
        with pytest.raises(ValueError, match=key):
            from_sequence(seq, "smoke", "hnet", **{key: value})


def test_inferred_boundaries_need_one_reward(tmp_path):
    seq = toyseq.sequence()
    tasks = tuple(t.__class__(**{**t.__dict__, "reward": lambda s, a, s2, i=i: -i * s2[..., 0]})
                  for i, t in enumerate(seq.tasks))
    seq = seq.__class__(**{**seq.__dict__, "tasks": tasks})
    cfg = from_sequence(seq, "smoke", "hnet", task_boundaries="inferred")
    with pytest.raises(ValueError, match="different rewards"):
        ContinualRun(cfg, seq, str(tmp_path), quiet=True, tensorboard=False)


# ------------------------------------------------------------------ the pieces
def _point_model():
    """hnet on two turned-point tasks, each fitted on 400 random transitions."""
    rng = np.random.default_rng(0)
    cd = ContinualDynamics(2, 2, "hnet", seed=0, hidden=(32, 32), hnet_hidden=(16, 16),
                           lr=1e-3)
    data = []
    for angle in (0.0, 120.0):
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        x = rng.uniform(-1, 1, (500, 2)).astype(np.float32)
        u = rng.uniform(-1, 1, (500, 2)).astype(np.float32)
        x2 = (x + 0.2 * u @ np.array([[c, -s], [s, c]]).T).astype(np.float32)
        data.append((x, u, x2))
        cd.begin_task()
        cd.fit(x[:400], u[:400], x2[:400], steps=600)
        cd.end_task()
    return cd, data


def test_prediction_errors_are_each_tasks_own():
    cd, data = _point_model()
    s, a, s2 = data[1]
    sq = cd.prediction_errors(s[400:], a[400:], s2[400:])
    assert sq.shape == (2, 100, 2)
    for task in (0, 1):
        own = (torch.as_tensor(cd.predict(s[400:], a[400:], task=task) - s2[400:])) ** 2
        assert torch.allclose(sq[task], own, atol=1e-6)
    with pytest.raises(ValueError, match="task"):
        cd.prediction_errors(s, a, s2, tasks=[2])


def test_detector_explains_a_tasks_own_windows_and_not_others():
    cd, data = _point_model()
    detector = TaskDetector(window=10, quantile=0.95, margin=2.0)
    assert not detector.calibrate(cd, 0, *(x[400:409] for x in data[0]))  # under W
    for task in (0, 1):
        assert detector.calibrate(cd, task, *(x[400:] for x in data[task]))
    own = detector.ratios(cd, *(x[480:490] for x in data[1]))
    assert own[1] <= 1.0 < own[0]
    state = detector.state_dict()
    other = TaskDetector(10, 0.95, 2.0)
    other.load_state_dict(state)
    assert other.ratios(cd, *(x[480:490] for x in data[1])) == own


def test_detection_summary_counts_delays_and_false_alarms():
    dets = [{"task": 0, "step": 50}, {"task": 1, "step": 7}, {"task": 1, "step": 90},
            {"task": 3, "step": 12}]
    got = detection_summary(dets, tasks=4, steps_per_task=1000)
    assert got["delays"] == [7, None, 12]
    assert got["detected"] == 2 and got["changes"] == 3 and got["mean_delay"] == 9.5
    assert got["false_alarms"] == 2 and got["false_alarms_per_10k_steps"] == 5.0


def test_task_free_policy_scores_only_the_transitions_that_move_the_evidence_dims(monkeypatch):
    """With ``evidence`` dims, a transition that leaves them still neither enters the window
    nor counts as a step; the episode keeps its task until one that moves them."""
    from types import SimpleNamespace

    import hypercrl.learners.taskfree
    from hypercrl.learners.taskfree import TaskFreeBatchPolicy

    monkeypatch.setattr(hypercrl.learners.taskfree, "plan_across",
                        lambda agents, obs, opts: torch.zeros(len(obs), 1, 1))

    seen = []

    def infer_task(states, actions, next_states):
        seen.append(next_states.copy())
        return SimpleNamespace(task=1)

    dyn = SimpleNamespace(state_dim=3, action_dim=1, infer_task=infer_task)
    agent = SimpleNamespace()
    optimizer = SimpleNamespace(generator=torch.Generator(), reset=lambda: None)
    policy = TaskFreeBatchPolicy(dyn, [agent, agent], [optimizer], window=2, every=1,
                                 start_task=0, evidence=[1, 2], change=0.01)
    policy.reset([0])
    # dims 1, 2 still (the hand moves alone), then the object moves, still, moves again
    states = [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.6, 0.005, 0.0], [0.7, 0.1, 0.0],
              [0.8, 0.1, 0.0], [0.9, 0.1, -0.2]]
    for s in states:
        policy(np.array([s], np.float32), [0])
    assert [len(w) for w in seen] == [1, 2]  # only the two moving transitions were scored
    assert seen[0][0][1] == np.float32(0.1) and seen[1][1][2] == np.float32(-0.2)
    assert policy.usage == [3, 3]  # the start task until the first evidence, then task 1
    # without evidence dims every transition counts
    seen.clear()
    policy = TaskFreeBatchPolicy(dyn, [agent, agent], [optimizer], window=2, every=1,
                                 start_task=0)
    policy.reset([0])
    for s in states:
        policy(np.array([s], np.float32), [0])
    assert len(seen) == len(states) - 1


def test_infer_dims_are_checked():
    seq = toyseq.sequence()
    with pytest.raises(ValueError, match="set task_free_eval=true or task_boundaries=inferred"):
        from_sequence(seq, "smoke", "hnet", infer_dims=(0,))
    with pytest.raises(ValueError, match=r"infer_dims \(2,\): the turned_point state has dims"):
        from_sequence(seq, "smoke", "hnet", task_free_eval=True, infer_dims=(2,))
    with pytest.raises(ValueError, match="infer_change must be > 0"):
        from_sequence(seq, "smoke", "hnet", infer_change=0.0)


def test_detection_with_evidence_dims_looks_only_at_the_transitions_that_move_them(tmp_path):
    # only transitions moving the point's x by 5 cm or more count: about two in three
    run, metrics = _run(tmp_path, "evidence", task_boundaries="inferred", infer_dims=(0,),
                        infer_change=0.05)
    s, _, s2 = run.learner.recent.arrays()
    assert len(s) == SCHEDULE["infer_window"]
    assert np.all(np.abs(s2[:, 0] - s[:, 0]) >= 0.05)
    summary = metrics["detection"]
    assert summary["detected"] == summary["changes"] == 2
    assert summary["false_alarms"] == 0


def test_task_free_evaluation_starts_with_the_newest_fitted_task(inferred):
    """A task begun late (a detection near a task's end) has no fitted model yet: evaluation
    episodes start with the task before it, not with an untrained model."""
    run, _ = inferred
    learner = run.learner
    fitted = learner.fitted
    try:
        assert learner.task == 2
        learner.fitted = True
        assert learner.batch_policy(0, 1).start_task == 2
        learner.fitted = False
        assert learner.batch_policy(0, 1).start_task == 1
    finally:
        learner.fitted = fitted


def _scalars(run_dir, tag):
    with open(os.path.join(run_dir, "scalars.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [r["value"] for r in rows if r["tag"] == tag]


def test_detection_logs_each_checks_score_ratio(inferred):
    run, metrics = inferred
    ratios = _scalars(run.run_dir, "train/task_free/score_ratio")
    # every check of every task is logged; the windows that started a task scored above 1
    assert len(ratios) > 50 and all(r > 0 for r in ratios)
    assert sum(r > 1.0 for r in ratios) >= SCHEDULE["detect_patience"] * len(
        metrics["detections"])

