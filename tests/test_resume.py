"""A run killed anywhere and resumed gives exactly the metrics of the uninterrupted run.

In-process kills (an exception at a chosen point) cover every method at three points: mid-task
after a checkpoint, right after a task-end checkpoint, and during an evaluation. Real kills
(SIGKILL of a subprocess, and Ctrl-C) cover the process boundary.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch

from hypercrl import cli
from hypercrl.config import from_sequence
from hypercrl.loop import ContinualRun

METHODS = ["hnet", "chunked_hnet", "coreset", "ewc", "si", "oa", "sb3-sac"]
KEYS = ("returns", "successes", "model_error_1", "model_error_h")
# 50 env steps per task, 10 per episode, a checkpoint every other episode
SMOKE = {"num_tasks": 2, "checkpoint_every": 20}
_FULL: dict[str, dict] = {}


def _cfg(method):
    return from_sequence(cli._sequence("halfcheetah", "mujoco"), "smoke", method, **SMOKE)


def _metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)


def _full(method, tmp_path_factory):
    if method not in _FULL:
        run_dir = str(tmp_path_factory.mktemp("full") / method)
        _FULL[method] = _metrics(cli.start_run(_cfg(method), run_dir, quiet=True))
    return _FULL[method]


def _assert_same(full, run_dir):
    resumed = _metrics(run_dir)
    for key in KEYS:
        assert resumed[key] == full[key], key
    rows = []
    with open(os.path.join(run_dir, "scalars.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            rows.append((row["tag"], row["step"]))
    dupes = [k for k, n in Counter(rows).items() if n > 1]
    assert not dupes, f"logged twice after the resume: {dupes[:5]}"


def _assert_tensorboard_once(run_dir):
    """TensorBoard, reading every event file of the run as one stream, sees each step once."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(os.path.join(run_dir, "tb"))
    acc.Reload()
    for tag in acc.Tags()["scalars"]:
        steps = [e.step for e in acc.Scalars(tag)]
        assert len(steps) == len(set(steps)), tag


def _at_observe(n, action):
    """A replacement of ContinualRun._train_task that calls ``action(run)`` at the n-th env
    step of the run (1-based), before the learner observes it; and the step counter."""
    real = ContinualRun.__dict__["_train_task"]
    count = {"n": 0}

    def patched(self, t):
        learner = self.learner
        observe = type(learner).observe

        def observing(tr):
            count["n"] += 1
            if count["n"] == n:
                action(self)
            return observe(learner, tr)

        learner.observe = observing
        try:
            return real(self, t)
        finally:
            del learner.observe

    return patched, count


def _die(run):
    run.log.flush()  # what a killed process had written reached the disk
    raise KeyboardInterrupt


def _die_at_observe(n):
    return _at_observe(n, _die)[0]


def _die_in_evaluation(n):
    """Dies in the n-th evaluation, once its episodes have run and before they are recorded."""
    real = ContinualRun.evaluate_tasks
    count = {"n": 0}

    def patched(self, *args, **kwargs):
        count["n"] += 1
        mine = count["n"]  # a learner without a joint batch policy calls it per task inside
        out = real(self, *args, **kwargs)
        if mine == n:
            self.log.flush()
            raise KeyboardInterrupt
        return out

    return patched


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("point", ["mid_task", "task_boundary", "evaluation"])
def test_killed_anywhere_resumes_exactly(method, point, tmp_path, tmp_path_factory,
                                         monkeypatch):
    full = _full(method, tmp_path_factory)
    if point == "mid_task":  # task 1, step 35: after its checkpoint at 20 and logs at 30
        monkeypatch.setattr(ContinualRun, "_train_task", _die_at_observe(85))
    elif point == "task_boundary":  # the first step of task 1, right after task 0's checkpoint
        monkeypatch.setattr(ContinualRun, "_train_task", _die_at_observe(51))
    else:  # evaluating tasks 0 and 1 after task 1 (the run's 2nd evaluation)
        monkeypatch.setattr(ContinualRun, "evaluate_tasks", _die_in_evaluation(2))
    killed = str(tmp_path / "killed")
    with pytest.raises(KeyboardInterrupt):
        cli.start_run(_cfg(method), killed, quiet=True)
    monkeypatch.undo()
    assert len(_metrics(killed)["returns"]) == 1  # task 0 finished, task 1 not
    cli.resume_run(killed, quiet=True)
    _assert_same(full, killed)
    if method == "hnet":
        _assert_tensorboard_once(killed)


def _start(run_dir, method):
    argv = [sys.executable, "-m", "hypercrl.cli", "run", "--sequence", "halfcheetah",
            "--method", method, "--profile", "smoke", "--run-dir", run_dir, "--quiet"]
    for key, value in SMOKE.items():
        argv += ["--set", f"{key}={value}"]
    # the same thread count as this process, which runs the reference and the resumed part:
    # float reductions differ between thread counts
    threads = str(torch.get_num_threads())
    return subprocess.Popen(argv, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": threads})


def _progress(path):
    """(task, env step) of the checkpoint at ``path`` (written by rename: never half)."""
    p = torch.load(path, weights_only=False)["progress"]
    return (p["task"], p["step"])


def _wait_for_checkpoints(proc, path, count, timeout=120):
    """Wait until ``path`` has been written ``count`` times after the first; True if so."""
    seen, last, start = 0, None, time.monotonic()
    while time.monotonic() - start < timeout and proc.poll() is None:
        try:
            mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime is not None and mtime != last:
            seen, last = seen + (last is not None), mtime
            if seen >= count:
                return True
        time.sleep(0.005)
    return False


@pytest.mark.parametrize("method,checkpoints", [
    ("hnet", 2), ("hnet", 5), ("chunked_hnet", 3), ("coreset", 4), ("ewc", 3), ("si", 4),
    ("sb3-sac", 3),
])
def test_sigkill_of_the_process_then_resume_is_exact(method, checkpoints, tmp_path,
                                                     tmp_path_factory):
    full = _full(method, tmp_path_factory)
    run_dir = str(tmp_path / "run")
    proc = _start(run_dir, method)
    reached = _wait_for_checkpoints(proc, os.path.join(run_dir, "checkpoint.pt"), checkpoints)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    assert reached, proc.stderr.read()
    code = cli.main(["resume", run_dir, "--quiet"])
    assert code == 0
    _assert_same(full, run_dir)


def test_ctrl_c_writes_a_checkpoint_names_the_run_and_resumes_exactly(tmp_path,
                                                                    tmp_path_factory):
    full = _full("hnet", tmp_path_factory)
    run_dir = str(tmp_path / "run")
    proc = _start(run_dir, "hnet")
    ckpt = os.path.join(run_dir, "checkpoint.pt")
    assert _wait_for_checkpoints(proc, ckpt, 2)
    before = _progress(ckpt)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # finished before the signal landed: nothing to check
        pytest.skip("the run ended before Ctrl-C arrived")
    assert proc.returncode == 130
    assert f"hypercrl resume {run_dir}" in err
    assert _progress(ckpt) >= before  # the stop's own checkpoint: test_ctrl_c_checkpoints_*
    assert cli.main(["resume", run_dir, "--quiet"]) == 0
    _assert_same(full, run_dir)


def test_a_second_ctrl_c_stops_at_once(tmp_path, monkeypatch):
    # both signals arrive during the 35th env step (mid-episode): the first asks for a stop at
    # the episode end, the second stops right there, without another checkpoint
    seen = {}

    def two_ctrl_c(run):
        seen["ckpt"] = os.stat(os.path.join(run.run_dir, "checkpoint.pt")).st_mtime_ns
        os.kill(os.getpid(), signal.SIGINT)
        assert run.stop_requested  # the first only asks
        os.kill(os.getpid(), signal.SIGINT)

    patched, count = _at_observe(35, two_ctrl_c)
    monkeypatch.setattr(ContinualRun, "_train_task", patched)
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        cli.start_run(_cfg("hnet"), str(run_dir), quiet=True)
    assert count["n"] == 35  # stopped in that step, not at the episode end
    assert os.stat(run_dir / "checkpoint.pt").st_mtime_ns == seen["ckpt"]


def test_ctrl_c_checkpoints_at_the_next_episode_end(tmp_path, monkeypatch):
    # Ctrl-C during step 25 of task 1: the run goes on to the episode end at step 30, which is
    # no periodic checkpoint (every 20 steps: 20, 40), writes one there and stops
    patched, count = _at_observe(75, lambda run: os.kill(os.getpid(), signal.SIGINT))
    monkeypatch.setattr(ContinualRun, "_train_task", patched)
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        cli.start_run(_cfg("hnet"), str(run_dir), quiet=True)
    assert count["n"] == 80  # it finished the episode
    assert _progress(run_dir / "checkpoint.pt") == (1, 30)


def test_a_checkpoint_written_before_has_success_resumes_with_it(tmp_path, monkeypatch):
    monkeypatch.setattr(ContinualRun, "_train_task", _die_at_observe(85))
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        cli.start_run(_cfg("finetune"), str(killed), quiet=True)
    monkeypatch.undo()
    state = torch.load(killed / "checkpoint.pt", weights_only=False)
    assert "has_success" not in state["metrics"]  # derived from the tasks, not checkpointed
    cli.resume_run(str(killed), quiet=True)
    assert _metrics(killed)["has_success"] is False  # HalfCheetah's tasks define none
