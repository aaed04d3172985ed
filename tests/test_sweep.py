"""`hypercrl sweep`: trials on a local Ray, resumable after a killed driver, retried, one report.

Every sweep here is the real command in a subprocess (as a user runs it), on the smoke profile
with 3 tasks, 2 methods x 2 seeds, Ray started with 2 CPUs.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hypercrl import cli, sweep

needs_ray = pytest.mark.skipif(not sweep.ray_available(),
                               reason="Ray is not installed (make test installs the sweep "
                               "extra: pip install 'hypercrl[sweep]')")

METHODS, SEEDS, TASKS = ("hnet", "finetune"), (0, 1), 3
# 100 MPC steps a task (smoke has 20): a task takes about 2 s, long enough to kill a trial in
SETTINGS = ["--profile", "smoke", "--set", f"num_tasks={TASKS}", "--set", "mpc_steps=100"]
GRID = ["--sequences", "push", "--methods", ",".join(METHODS),
        "--seeds", ",".join(map(str, SEEDS)), *SETTINGS, "--num-cpus", "2"]
NAMES = [f"push-mujoco-{m}-s{s}" for m in METHODS for s in SEEDS]


def _command(out, *extra):
    return [sys.executable, "-m", "hypercrl.cli", "sweep", *GRID, "--out", str(out), *extra]


def _sweep(out, *extra):
    return subprocess.run(_command(out, *extra), capture_output=True, text=True, timeout=600)


def _ray_processes() -> set[tuple[int, float]]:
    """Ray's processes on this machine: its servers, agents and workers."""
    import psutil

    out = set()
    for p in psutil.process_iter(["pid", "name", "cmdline", "create_time"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if (p.info["name"] or "").startswith("ray::") or cmd.startswith("ray::") or any(
                key in cmd for key in ("/ray/core/src/ray/", "/site-packages/ray/")):
            out.add((p.info["pid"], p.info["create_time"]))
    return out


def _gone(processes, timeout=20.0):
    """Wait until none of ``processes`` is alive; those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = processes & _ray_processes()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _matrices(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        m = json.load(f)
    return m["returns"], m["successes"]


def _rows(run_dir) -> int:
    try:
        with open(os.path.join(run_dir, "metrics.json")) as f:
            return len(json.load(f)["returns"])
    except (OSError, ValueError):
        return 0


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The uninterrupted sweep, and the Ray processes that were alive before it."""
    out = tmp_path_factory.mktemp("sweep") / "grid"
    before = _ray_processes()
    done = _sweep(out)
    assert done.returncode == 0, done.stderr
    return out, before, done


@pytest.mark.slow
@needs_ray
def test_sweep_equals_the_same_runs_made_one_by_one(swept, tmp_path, capsys):
    out, before, done = swept
    assert sorted(os.listdir(out)) == sorted(
        [*NAMES, ".locks", "REPORT.md", "data", "sweep.json", "push_mujoco_finetune.png",
         "push_mujoco_hnet.png"])
    assert done.stdout.strip() == str(out / "REPORT.md")
    assert "done 4/4, running 0, failed 0, left 0" in done.stderr
    for name in NAMES:
        assert f"sweep: {name} finished in" in done.stderr
    report = (out / "REPORT.md").read_text()
    for method in METHODS:
        assert f"## push / mujoco / {method}" in report
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a trial asks for 1 CPU and runs with 1 torch thread
    try:
        for m in METHODS:
            for s in SEEDS:
                run_dir = tmp_path / f"{m}-s{s}"
                assert cli.main(["run", "--sequence", "push", "--method", m, "--seed", str(s),
                                 *SETTINGS, "--quiet", "--run-dir", str(run_dir)]) == 0
                assert _matrices(run_dir) == _matrices(out / f"push-mujoco-{m}-s{s}")
    finally:
        torch.set_num_threads(threads)
    # `hypercrl report DIR` on the sweep's folder: the same report over its trials
    capsys.readouterr()
    assert cli.main(["report", str(out), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "REPORT.md").read_text() == report
    assert not _gone(_ray_processes() - before), "Ray processes left after the sweep"


@pytest.mark.slow
@needs_ray
def test_the_same_command_again_runs_nothing(swept):
    out, _, _ = swept
    stamps = {n: os.stat(out / n / "checkpoint.pt").st_mtime_ns for n in NAMES}
    again = _sweep(out)
    assert again.returncode == 0, again.stderr
    assert "the 4 trials asked for" in again.stderr and "finished before" in again.stderr
    assert {n: os.stat(out / n / "checkpoint.pt").st_mtime_ns for n in NAMES} == stamps


@pytest.mark.slow
@needs_ray
def test_driver_killed_mid_sweep_then_the_same_command_continues(swept, tmp_path):
    reference, _, _ = swept
    out = tmp_path / "grid"
    before = _ray_processes()
    driver = subprocess.Popen(_command(out), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    # kill the driver once one trial has finished and another has ended its first task
    # (0.2 s later its checkpoint after task 0 is on disk; two tasks, about 4 s, are left)
    deadline = time.monotonic() + 300
    while True:
        rows = {n: _rows(out / n) for n in NAMES}
        if TASKS in rows.values() and 1 in rows.values():
            time.sleep(0.2)
            break
        assert driver.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    assert not _gone(_ray_processes() - before), "Ray processes left after the killed driver"
    rows = {n: _rows(out / n) for n in NAMES}
    finished = [n for n in NAMES if rows[n] == TASKS]
    partial = [n for n in NAMES if 0 < rows[n] < TASKS]
    assert finished and partial
    kept = {n: os.stat(out / n / "checkpoint.pt").st_mtime_ns for n in finished}
    first_models = {n: os.stat(out / n / "model_after0.pt").st_mtime_ns for n in partial}

    again = _sweep(out)
    assert again.returncode == 0, again.stderr
    assert f"{len(finished)} finished before" in again.stderr
    for n in finished:  # not run again
        assert f"sweep: {n} finished in" not in again.stderr
        assert os.stat(out / n / "checkpoint.pt").st_mtime_ns == kept[n]
    for n in partial:  # resumed from its checkpoint: task 0's model is not trained again
        assert os.stat(out / n / "model_after0.pt").st_mtime_ns == first_models[n]
        line = next(x for x in again.stderr.splitlines() if f"sweep: {n} finished in" in x)
        assert "(resumed)" in line
    for n in NAMES:
        assert _matrices(out / n) == _matrices(reference / n)


@pytest.mark.slow
@needs_ray
def test_ctrl_c_stops_the_sweep_saying_how_to_continue(swept, tmp_path):
    reference, _, _ = swept
    out = tmp_path / "grid"
    before = _ray_processes()
    driver = subprocess.Popen(_command(out), stderr=subprocess.PIPE, text=True,
                              stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not any((out / n / "checkpoint.pt").exists() for n in NAMES):  # a trial started
        assert driver.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # into its next task
    asked = time.time_ns()
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err
    lines = err.strip().splitlines()
    assert lines[-1] == (
        "hypercrl: interrupted; run the same command again to continue (finished trials are "
        "kept, the others resume from their checkpoints)")
    assert any(line.startswith("sweep: stopping: each running trial writes a checkpoint")
               for line in lines)
    assert not _gone(_ray_processes() - before), "Ray processes left after Ctrl-C"
    # every trial that was running and did not finish wrote a checkpoint after the Ctrl-C
    stopped = [n for n in NAMES if (out / n / "checkpoint.pt").exists() and _rows(out / n) < TASKS]
    assert stopped
    for n in stopped:
        assert os.stat(out / n / "checkpoint.pt").st_mtime_ns > asked, n

    again = _sweep(out)  # continues from those checkpoints to the uninterrupted results
    assert again.returncode == 0, again.stderr
    for n in NAMES:
        assert _matrices(out / n) == _matrices(reference / n)


@pytest.mark.slow
@needs_ray
def test_a_failing_trial_is_retried_then_reported_while_the_others_finish(tmp_path):
    out = tmp_path / "grid"
    # finetune-s1 holds a corrupt checkpoint of its own run: every attempt to resume it fails
    bad = out / "push-mujoco-finetune-s1"
    bad.mkdir(parents=True)
    cfg = cli.resolve_config("push", "mujoco", "finetune", "smoke", SETTINGS[3::2], seed=1)
    (bad / "config.json").write_text(cfg.to_json())
    (bad / "checkpoint.pt").write_bytes(b"not a checkpoint")
    done = subprocess.run(
        [sys.executable, "-m", "hypercrl.cli", "sweep", "--sequences", "push", "--methods",
         "finetune", "--seeds", "0,1", *SETTINGS, "--num-cpus", "2", "--max-retries", "2",
         "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    err = done.stderr
    assert "push-mujoco-finetune-s1 failed (attempt 1 of 3)" in err
    assert "push-mujoco-finetune-s1 failed (attempt 2 of 3)" in err
    assert "push-mujoco-finetune-s1 failed after 3 attempt(s)" in err
    assert "checkpoint.pt" in err.splitlines()[-1]  # the last line names the trial and error
    assert "sweep: push-mujoco-finetune-s0 finished in" in err
    assert _rows(out / "push-mujoco-finetune-s0") == TASKS
    report = (out / "REPORT.md").read_text()
    assert "push-mujoco-finetune-s0" in report and "push-mujoco-finetune-s1" not in report


# --- refused before anything runs ----------------------------------------------------------
def test_other_settings_in_the_same_folder_are_refused_naming_them(tmp_path, capsys):
    out = tmp_path / "grid"
    out.mkdir()
    sweep.write_manifest(str(out), sweep.settings("smoke", ["num_tasks=3"], False),
                         sweep.grid(["push"], ["mujoco"], ["hnet"], [0]))
    before = sorted(os.listdir(out))
    code = cli.main(["sweep", "--methods", "hnet", "--seeds", "0", "--profile", "smoke",
                     "--set", "num_tasks=2", "--set", "mpc_steps=10", "--out", str(out)])
    assert code == 2
    line = capsys.readouterr().err.strip()
    assert "--set num_tasks (3 in the sweep, 2 now)" in line
    assert "--set mpc_steps (unset in the sweep, 10 now)" in line
    assert len(line.splitlines()) == 1
    assert sorted(os.listdir(out)) == before


def test_drivers_side_by_side_on_one_folder_each_add_their_trials_to_its_manifest(
        tmp_path, monkeypatch):
    # driver B reads the (empty) manifest at its start; driver A then writes its trial;
    # B must add its own beside A's, not overwrite it (a report of the folder lists both)
    out = tmp_path / "grid"
    out.mkdir()
    settings = sweep.settings("smoke", [], False)
    (a,) = sweep.grid(["push"], ["mujoco"], ["coreset"], [0])
    (b,) = sweep.grid(["push"], ["mujoco"], ["single"], [0])
    read = sweep.check_settings
    calls = []

    def a_starts_meanwhile(folder, wanted):
        known = read(folder, wanted)
        calls.append(folder)
        if len(calls) == 1:  # B's read at its start
            sweep.write_manifest(folder, wanted, [a])
        return known

    monkeypatch.setattr(sweep, "check_settings", a_starts_meanwhile)
    sweep.run_sweep(str(out), {b: "{}"}, settings,
                    lambda *args: {"seconds": 0.0, "resumed": False, "returns": []},
                    engine="serial", max_retries=0, quiet=True)
    assert sweep.read_manifest(str(out))["trials"] == [a, b]


def test_without_ray_sweep_says_how_to_install_it_and_runs_nothing(tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.setattr(sweep, "ray_available", lambda: False)
    out = tmp_path / "grid"
    assert cli.main(["sweep", "--profile", "smoke", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "hypercrl: error: sweep needs Ray: pip install 'hypercrl[sweep]'"
    assert not out.exists()


def test_launch_script_without_ray_runs_the_trials_one_after_another(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setattr(sweep, "ray_available", lambda: False)
    out = tmp_path / "cmp"
    code = cli.launch_main("push", ["--methods", "finetune", "--seeds", "0,1", "--profile",
                                    "smoke", "--set", "num_tasks=2", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines()[-1] == str(out / "REPORT.md")
    assert "task 1 (100_500): 50 env steps" in printed.out  # each run's own progress
    assert "Ray is not installed: the runs go one after another" in printed.err
    for s in (0, 1):
        assert _rows(out / f"push-mujoco-finetune-s{s}") == 2
    assert cli.launch_main("push", ["--methods", "finetune", "--seeds", "0", "--profile",
                                    "smoke", "--set", "num_tasks=2", "--out", str(out),
                                    "--address", "auto"]) == 2
    assert "--address needs Ray: pip install 'hypercrl[sweep]'" in capsys.readouterr().err


def test_progress_says_when_a_running_trial_ends_a_task(tmp_path, capsys):
    run_dir = tmp_path / "push-mujoco-hnet-s0"
    run_dir.mkdir()

    def ended(rows):
        (run_dir / "metrics.json").write_text(json.dumps(
            {"tasks": ["a", "b", "c"], "returns": {str(i): [[1.0]] for i in range(rows)}}))

    progress = sweep._Progress(total=1, quiet=False, every=10.0)
    dirs = {run_dir.name: str(run_dir)}
    progress.tasks(dirs, now=-10.0)  # no metrics yet
    ended(1)
    progress.tasks(dirs, now=0.0)  # the first look: what had ended before is not news
    ended(2)
    progress.tasks(dirs, now=5.0)  # too soon: no look
    assert capsys.readouterr().err == ""
    progress.tasks(dirs, now=10.0)
    assert capsys.readouterr().err == "sweep: push-mujoco-hnet-s0: 2 of 3 tasks ended\n"
    progress.tasks(dirs, now=20.0)  # nothing new
    ended(3)
    progress.tasks(dirs, now=30.0)  # the trial's own line says it finished
    assert capsys.readouterr().err == ""


def _checkpoint(run_dir, steps, rows=0):
    """What a run's checkpoint writes to its metrics: 3 tasks of 100 + 400 env steps."""
    (run_dir / "metrics.json").write_text(json.dumps({
        "config": {"init_random_steps": 100, "mpc_steps": 400},
        "tasks": ["a", "b", "c"], "returns": {str(i): [[1.0]] for i in range(rows)},
        "train_episodes": [{"task": 0, "env_steps": s} for s in range(100, steps + 1, 100)]}))


def test_progress_gives_each_running_trials_env_steps_every_heartbeat(tmp_path, capsys):
    run_dir = tmp_path / "push-mujoco-hnet-s0"
    run_dir.mkdir()

    def at(steps, rows=0):
        _checkpoint(run_dir, steps, rows)

    progress = sweep._Progress(total=1, quiet=False, every=10.0, heartbeat=600.0)
    dirs = {run_dir.name: str(run_dir)}
    at(300)
    progress.tasks(dirs, now=0.0)  # the first look starts the heartbeat's clock
    at(500)
    progress.tasks(dirs, now=100.0)  # it moved: its pace is measured from here
    at(700, rows=1)
    progress.tasks(dirs, now=300.0)
    assert capsys.readouterr().err == "sweep: push-mujoco-hnet-s0: 1 of 3 tasks ended\n"
    progress.tasks(dirs, now=600.0)
    assert capsys.readouterr().err == ("sweep: push-mujoco-hnet-s0: 700 of 1500 env steps "
                                       "(47 %), 1 of 3 tasks ended, about 33 min left at its "
                                       "pace so far\n")  # 200 steps in 500 s, 800 to go
    progress.tasks(dirs, now=1200.0)  # no step since the last heartbeat: nothing to say
    at(800, rows=1)
    progress.tasks(dirs, now=1500.0)  # between heartbeats
    assert capsys.readouterr().err == ""
    progress.tasks(dirs, now=1800.0)
    assert capsys.readouterr().err == ("sweep: push-mujoco-hnet-s0: 800 of 1500 env steps "
                                       "(53 %), 1 of 3 tasks ended, about 66 min left at its "
                                       "pace so far\n")  # 300 steps in 1700 s, 700 to go
    at(1500, rows=3)  # the last step: nothing left to estimate
    progress.tasks(dirs, now=2400.0)
    assert capsys.readouterr().err == ("sweep: push-mujoco-hnet-s0: 1500 of 1500 env steps "
                                       "(100 %), 3 of 3 tasks ended\n")


def test_a_queued_trials_time_left_counts_from_when_it_runs(tmp_path, capsys):
    """A trial waiting for a free CPU (or for its lock) has no pace yet: its time left is
    measured from the first checkpoint this command sees it write, not from the sweep's start."""
    run_dir = tmp_path / "door-mujoco-coreset-s1"
    run_dir.mkdir()
    progress = sweep._Progress(total=2, quiet=False, every=10.0, heartbeat=600.0)
    dirs = {run_dir.name: str(run_dir)}
    progress.tasks(dirs, now=0.0)  # queued behind another trial: no metrics yet
    progress.tasks(dirs, now=1200.0)
    _checkpoint(run_dir, 600)  # it started at 2400 s; its first checkpoint
    progress.tasks(dirs, now=3000.0)
    assert capsys.readouterr().err == ("sweep: door-mujoco-coreset-s1: 600 of 1500 env steps "
                                       "(40 %), 0 of 3 tasks ended\n")  # its pace not yet known
    _checkpoint(run_dir, 900)
    progress.tasks(dirs, now=3600.0)  # 300 steps in 600 s, 600 to go (not 900 in 3600 s)
    assert capsys.readouterr().err == ("sweep: door-mujoco-coreset-s1: 900 of 1500 env steps "
                                       "(60 %), 0 of 3 tasks ended, about 20 min left at its "
                                       "pace so far\n")


def test_time_left_counts_whole_trials_not_resumed_rests():
    progress = sweep._Progress(total=6, quiet=True)
    progress.seconds = [30.0, 600.0]  # a resumed trial's last minutes, a whole trial
    progress.whole = [600.0]
    assert progress.counts(2, 2, 0, 2, slots=2).endswith("about 20 min left")


def _begun_under_other_defaults(out, trial_names):
    """A sweep folder whose trials began when the smoke planner drew 9 samples, not 16."""
    import dataclasses

    sets = ["num_tasks=2"]
    sweep.write_manifest(str(out), sweep.settings("smoke", sets, False),
                         sweep.grid(["push"], ["mujoco"], ["finetune"], [0]))
    cfg = cli.resolve_config("push", "mujoco", "finetune", "smoke", sets, seed=0)
    old = dataclasses.replace(cfg, planner_options={**cfg.planner_options, "population": 9})
    for name in trial_names:
        (out / name).mkdir()
        (out / name / "config.json").write_text(old.to_json())
    return old


def test_a_trial_begun_under_other_defaults_continues_as_it_began(tmp_path, capsys,
                                                                   monkeypatch):
    out = tmp_path / "grid"
    out.mkdir()
    old = _begun_under_other_defaults(out, ["push-mujoco-finetune-s0"])
    ran = {}
    monkeypatch.setattr(sweep, "ray_available", lambda: True)
    monkeypatch.setattr(sweep, "run_sweep", lambda out, trials, *a, **k: ran.update(trials)
                        or sweep.SweepResult(out, None, list(trials), {}))
    argv = ["sweep", "--methods", "finetune", "--seeds", "0", "--profile", "smoke",
            "--set", "num_tasks=2", "--out", str(out)]
    assert cli.main(argv) == 0
    (config,) = ran.values()
    assert json.loads(config) == json.loads(old.to_json())  # not today's 16 samples
    err = capsys.readouterr().err
    assert "push-mujoco-finetune-s0 continues with the config it began with" in err
    assert "differ in ['planner_options.population']" in err
    # a trial added to that grid would be resolved with today's defaults: refused, none run
    ran.clear()
    assert cli.main([*argv[:4], "0,1", *argv[5:]]) == 2
    err = capsys.readouterr().err
    assert "its trials not yet begun (push-mujoco-finetune-s1) would not match them" in err
    assert not ran and not (out / "push-mujoco-finetune-s1").exists()


def test_sweep_settings_compare_values_not_spellings():
    from hypercrl.sweep import settings, settings_diff

    old = settings("quick", ["lr=1e-3", "hidden=200,200", "clip_states=True"], False)
    same = settings("quick", ["lr=0.001", "hidden=200, 200", "clip_states=true"], False)
    assert settings_diff(old, same) == []
    other = settings("quick", ["lr=0.002", "hidden=200,200", "clip_states=true"], False)
    assert settings_diff(old, other) == ["--set lr (1e-3 in the sweep, 0.002 now)"]
