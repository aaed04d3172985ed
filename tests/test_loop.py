"""The continual loop end to end on small settings: runs, resume, report, CLI errors."""

import json
import os
import shutil

import torch

from hypercrl import cli, rundir
from hypercrl.config import from_sequence
from hypercrl.loop import ContinualRun

SMOKE = {"num_tasks": 2, "checkpoint_every": 10}


def _cfg(sequence="halfcheetah", backend="mujoco", method="hnet", **kw):
    return from_sequence(cli._sequence(sequence, backend), "smoke", method,
                         **{**SMOKE, **kw})


def _metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)


def test_report_over_two_runs(tmp_path):
    runs = [cli.start_run(_cfg(method=m, num_tasks=2), str(tmp_path / m), quiet=True)
            for m in ("hnet", "finetune")]
    path = cli.main(["report", *runs, "--out", str(tmp_path / "report")])
    assert path == 0
    text = (tmp_path / "report" / "REPORT.md").read_text()
    assert "halfcheetah / mujoco / hnet" in text and "halfcheetah / mujoco / finetune" in text
    assert "Forgetting per earlier task" in text
    assert (tmp_path / "report" / "halfcheetah_mujoco_hnet.png").stat().st_size > 1000
    # HalfCheetah defines no success: no "0%" in every cell
    assert _metrics(runs[0])["has_success"] is False
    assert "these tasks define no success" in text and "(0%)" not in text


def test_a_report_keeps_its_runs_metrics_and_reports_them_again_once_the_runs_are_gone(
        tmp_path, capsys):
    run = cli.start_run(_cfg(method="finetune"), str(tmp_path / "a" / "run"), quiet=True)
    twin = _metrics(run)  # the same folder name under another parent, as another seed
    twin["config"]["seed"] = 1
    os.makedirs(tmp_path / "b" / "run")
    (tmp_path / "b" / "run" / "metrics.json").write_text(json.dumps(twin))
    first = tmp_path / "first"
    assert cli.main(["report", run, str(tmp_path / "b" / "run"), "--out", str(first)]) == 0
    assert sorted(os.listdir(first / "data")) == ["run", "run-2"]
    assert json.loads((first / "data" / "run" / "metrics.json").read_text()) == _metrics(run)
    text = (first / "REPORT.md").read_text()
    assert "Their metrics are kept in `data/`" in text and "Seeds: [0, 1]" in text
    shutil.rmtree(tmp_path / "a")
    shutil.rmtree(tmp_path / "b")

    def tables(path):  # the report less its list of run folders
        return [x for x in path.read_text().splitlines() if not x.startswith("Runs: ")]

    assert cli.main(["report", str(first), "--out", str(tmp_path / "again")]) == 0
    assert tables(tmp_path / "again" / "REPORT.md") == tables(first / "REPORT.md")
    assert cli.main(["report", str(first)]) == 0  # in place: it reads its copies first
    assert tables(first / "REPORT.md") == tables(tmp_path / "again" / "REPORT.md")
    assert sorted(os.listdir(first / "data")) == ["run", "run-2"]

    other = _metrics(str(first / "data" / "run"))  # a new run beside the kept ones
    other["config"]["method"] = "hnet"
    os.makedirs(tmp_path / "new")
    (tmp_path / "new" / "metrics.json").write_text(json.dumps(other))
    assert cli.main(["report", str(first), str(tmp_path / "new"), "--out",
                     str(tmp_path / "both")]) == 0
    both = (tmp_path / "both" / "REPORT.md").read_text()
    assert "| finetune | 2 | " in both and "| hnet | 1 | " in both

    (first / "data" / "notes.txt").write_text("mine")  # not the report's: never replaced
    before = (first / "REPORT.md").read_text()
    capsys.readouterr()
    assert cli.main(["report", str(first)]) == 2
    err = capsys.readouterr().err
    assert "notes.txt: not a kept metrics folder" in err and "Traceback" not in err
    assert (first / "data" / "notes.txt").read_text() == "mine"
    assert (first / "REPORT.md").read_text() == before


def test_report_shows_success_where_the_tasks_define_it(tmp_path, capsys):
    run = cli.start_run(_cfg(method="finetune"), str(tmp_path / "a"), quiet=True)
    for value, shown in ((True, True), (None, True), ("yes", None)):  # None: written before
        data = _metrics(run)
        if value is None:
            del data["has_success"]
        else:
            data["has_success"] = value
        folder = tmp_path / f"m{value}"
        os.makedirs(folder)
        (folder / "metrics.json").write_text(json.dumps(data))
        status = cli.main(["report", str(folder), "--out", str(tmp_path / f"r{value}")])
        if shown is None:
            assert status == 2 and "'has_success' holds 'yes'" in capsys.readouterr().err
            continue
        text = (tmp_path / f"r{value}" / "REPORT.md").read_text()
        assert "success rate in brackets" in text and "(0%)" in text


def test_report_summary_has_one_table_per_sequence_and_backend(tmp_path):
    run = cli.start_run(_cfg(method="finetune", num_tasks=2), str(tmp_path / "a"), quiet=True)
    other = _metrics(run)  # the same numbers, as if run on the other backend
    other["config"]["backend"] = "pybullet"
    os.makedirs(tmp_path / "b")
    with open(tmp_path / "b" / "metrics.json", "w") as f:
        json.dump(other, f)
    assert cli.main(["report", run, str(tmp_path / "b"), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "REPORT.md").read_text()
    summary = text[text.index("## Summary"):text.index("\n## halfcheetah / mujoco")]
    assert summary.index("### halfcheetah / mujoco") < summary.index("### halfcheetah / pybullet")
    assert summary.count("| method | seeds | average final return | mean forgetting |") == 2
    assert summary.count("| finetune | 1 | ") == 2


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    def run(*argv):
        code = cli.main(list(argv))
        err = capsys.readouterr().err.strip()
        return code, err

    code, err = run("run", "--sequence", "nope")
    assert code == 2 and "unknown task family 'nope'" in err and "\n" not in err
    code, err = run("run", "--sequence", "halfcheetah", "--method", "foo")
    assert code == 2 and "unknown method 'foo'" in err
    code, err = run("run", "--sequence", "halfcheetah", "--set", "mpc_steps=abc")
    assert code == 2 and "mpc_steps" in err
    code, err = run("run", "--sequence", "halfcheetah", "--set", "nokey=1")
    assert code == 2 and "nokey" in err
    code, err = run("run", "--sequence", "halfcheetah", "--profile", "fast")
    assert code == 2 and "unknown profile 'fast'" in err
    code, err = run("run", "--sequence", "halfcheetah", "--backend", "pybullet")
    assert code == 2 and "unknown backend 'pybullet'" in err and "mujoco" in err
    code, err = run("resume", str(tmp_path / "none"))
    assert code == 2 and "not a run directory" in err
    # a corrupt checkpoint: nothing overwritten
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(_cfg().to_json())
    (run_dir / "checkpoint.pt").write_bytes(b"garbage")
    code, err = run("resume", str(run_dir))
    assert code == 2 and "is not a hypercrl run checkpoint (unreadable" in err
    assert (run_dir / "checkpoint.pt").read_bytes() == b"garbage"
    # a run dir that holds another run
    code, err = run("run", "--sequence", "halfcheetah", "--profile", "smoke", "--seed", "3",
                    "--run-dir", str(run_dir))
    assert code == 2 and "another config" in err


def test_resume_refuses_a_config_that_does_not_match_the_checkpoint(tmp_path, capsys):
    cfg = _cfg(num_tasks=1)
    run_dir = cli.start_run(cfg, str(tmp_path / "run"), quiet=True)
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    edited = json.loads((tmp_path / "run" / "config.json").read_text())
    edited["mpc_steps"] += 1
    (tmp_path / "run" / "config.json").write_text(json.dumps(edited))
    assert cli.main(["resume", run_dir]) == 2
    assert "does not match" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before


def test_resume_of_a_finished_run_changes_nothing(tmp_path, capsys):
    run_dir = cli.start_run(_cfg(num_tasks=1), str(tmp_path / "done"), quiet=True)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "done").rglob("*")}
    capsys.readouterr()
    assert cli.main(["resume", run_dir]) == 0
    assert "finished (1 of 1 tasks); nothing to resume" in capsys.readouterr().err
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "done").rglob("*")}
    assert after == before


def test_ctrl_c_names_the_run_to_resume(tmp_path, capsys, monkeypatch):
    def interrupt(self, t):
        raise KeyboardInterrupt

    monkeypatch.setattr(ContinualRun, "_train_task", interrupt)
    run_dir = str(tmp_path / "r")
    code = cli.main(["run", "--sequence", "halfcheetah", "--profile", "smoke", "--run-dir",
                     run_dir])
    assert code == 130
    assert f"`hypercrl resume {run_dir}`" in capsys.readouterr().err


def test_divergence_stops_the_run_in_one_line_and_keeps_the_checkpoint(tmp_path, capsys):
    run_dir = tmp_path / "div"
    code = cli.main(["run", "--sequence", "halfcheetah", "--profile", "smoke", "--set",
                     "lr=1e6", "--set", "checkpoint_every=10", "--run-dir", str(run_dir),
                     "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "task 0: training diverged" in err and "last good checkpoint is kept" in err
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert state["progress"]["task"] == 0  # the run never got past the divergence


def test_report_leaves_out_a_run_with_non_finite_returns(tmp_path):
    good = cli.start_run(_cfg(num_tasks=1), str(tmp_path / "good"), quiet=True)
    bad = tmp_path / "bad"
    bad.mkdir()
    metrics = _metrics(good)
    metrics["returns"]["0"][0][0] = float("nan")
    (bad / "metrics.json").write_text(json.dumps(metrics))
    assert cli.main(["report", good, str(bad), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "REPORT.md").read_text()
    assert "Left out, non-finite returns (diverged)" in text and str(bad) in text
    assert cli.main(["report", str(bad), "--out", str(tmp_path / "rep2")]) == 2


def test_report_leaves_out_a_run_that_has_not_finished_a_task(tmp_path, capsys):
    good = cli.start_run(_cfg(num_tasks=1), str(tmp_path / "good"), quiet=True)
    started = tmp_path / "started"  # a sweep trial still in its first task
    started.mkdir()
    metrics = _metrics(good)
    metrics["returns"], metrics["successes"] = {}, {}
    (started / "metrics.json").write_text(json.dumps(metrics))
    assert cli.main(["report", good, str(started), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "REPORT.md").read_text()
    assert f"Left out, no task finished yet: `{started}`" in text
    assert "tasks finished: 0" not in text
    assert cli.main(["report", str(started), "--out", str(tmp_path / "rep2")]) == 2
    assert "no run has finished a task yet" in capsys.readouterr().err


def test_report_of_a_sweep_under_way_gives_the_finished_seeds_numbers(tmp_path):
    done = cli.start_run(_cfg(method="finetune"), str(tmp_path / "s0"), quiet=True)
    metrics = _metrics(done)  # seed 1 of the same method, its first task only so far
    metrics["config"]["seed"] = 1
    metrics["returns"] = {"0": [[r + 1000.0 for r in metrics["returns"]["0"][0]]]}
    metrics["successes"] = {"0": metrics["successes"]["0"]}
    running = tmp_path / "s1"
    running.mkdir()
    (running / "metrics.json").write_text(json.dumps(metrics))
    assert cli.main(["report", done, str(running), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "REPORT.md").read_text()
    assert "| finetune | 1 | " in text  # the summary: seed 0, which finished both tasks
    assert (f"Not in these numbers until they finish every task: `{running}` (seed 1, "
            "1 of 2 tasks)") in text
    assert "Seeds: [0]; " in text and "tasks finished: 2 of 2." in text
    seed0 = sum(_metrics(done)["returns"]["0"][0]) / len(_metrics(done)["returns"]["0"][0])
    assert f"| 0 | {seed0:.1f} +- " in text  # R[0, 0] is seed 0's alone, not averaged with 1


def test_a_run_written_before_an_option_existed_still_matches(tmp_path):
    # a run (or sweep trial) saved by an older version lacks the newer keys; it ran as their
    # defaults, so continuing it with the same command is not refused
    cfg = _cfg(method="hnet")
    old = json.loads(cfg.to_json())
    for key in ("task_boundaries", "task_free_eval", "infer_window"):
        del old[key]
    for key in ("ensemble", "member_input", "propagation", "disagreement"):
        del old["method_options"][key]
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert rundir.config_diff(str(tmp_path), cfg) == []
    changed = _cfg(method="hnet", task_free_eval=True, ensemble=2)
    assert rundir.config_diff(str(tmp_path), changed) == ["method_options.ensemble",
                                                       "task_free_eval"]


def test_a_run_checkpointed_before_an_option_existed_resumes(tmp_path, capsys):
    run_dir = tmp_path / "r"
    cli.start_run(_cfg(method="hnet"), str(run_dir), quiet=True)
    # made to look written by an older version: its checkpoint and config lack newer keys
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    old = json.loads((run_dir / "config.json").read_text())
    for config in (state["config"], old):
        for key in ("task_boundaries", "task_free_eval"):
            del config[key]
        del config["method_options"]["ensemble"]
    torch.save(state, run_dir / "checkpoint.pt")
    (run_dir / "config.json").write_text(json.dumps(old))
    # the configs are compared first: a mismatch would be exit status 2
    assert cli.main(["resume", str(run_dir), "--quiet"]) == 0
    assert "nothing to resume" in capsys.readouterr().err


def test_a_run_learns_the_tasks_it_names_in_that_order(tmp_path):
    seq = cli._sequence("halfcheetah", "mujoco")
    picked = _metrics(cli.start_run(_cfg(method="finetune", tasks=(2, 0)), str(tmp_path / "p"),
                                    quiet=True))
    assert picked["tasks"] == [seq.tasks[2].name, seq.tasks[0].name]
    # naming the first two tasks is the same run as num_tasks=2
    named = cli.start_run(_cfg(method="finetune", tasks=(0, 1)), str(tmp_path / "a"), quiet=True)
    first = cli.start_run(_cfg(method="finetune"), str(tmp_path / "b"), quiet=True)
    assert _metrics(named)["returns"] == _metrics(first)["returns"]
    assert picked["returns"] != _metrics(first)["returns"]


def test_tasks_are_checked(capsys):
    def dry(*sets):
        argv = ["run", "--sequence", "halfcheetah", "--dry-run"]
        for s in sets:
            argv += ["--set", s]
        code = cli.main(argv)
        return code, capsys.readouterr().err.strip()

    code, err = dry("tasks=7")
    assert code == 2 and "tasks (7,)" in err and "tasks 0..4" in err, err
    code, err = dry("tasks=1,2", "num_tasks=3")
    assert code == 2 and "num_tasks=3 but tasks names 2" in err, err
    code, err = dry("tasks=-1")
    assert code == 2 and "tasks must be task indices >= 0" in err, err
    assert dry("tasks=3,1,3")[0] == 0  # in any order, a task may come back


def test_a_run_of_named_tasks_resumes(tmp_path, monkeypatch):
    cfg = _cfg(method="finetune", tasks=(2, 0))
    whole = _metrics(cli.start_run(cfg, str(tmp_path / "whole"), quiet=True))
    real = ContinualRun._train_task

    def killed_in_task_1(self, t):
        if t == 1:
            raise KeyboardInterrupt
        return real(self, t)

    monkeypatch.setattr(ContinualRun, "_train_task", killed_in_task_1)
    run_dir = str(tmp_path / "r")
    assert cli.main(["run", "--sequence", "halfcheetah", "--method", "finetune", "--profile",
                     "smoke", "--set", "num_tasks=2", "--set", "checkpoint_every=10", "--set",
                     "tasks=2,0", "--run-dir", run_dir, "--quiet"]) == 130
    monkeypatch.setattr(ContinualRun, "_train_task", real)
    assert cli.main(["resume", run_dir, "--quiet"]) == 0
    got = _metrics(run_dir)
    assert got["tasks"] == whole["tasks"] and got["returns"] == whole["returns"]


def test_a_run_records_the_machine_it_computes_on(tmp_path):
    cli.start_run(_cfg(method="finetune", num_tasks=1), str(tmp_path / "r"), quiet=True)
    recorded = json.loads((tmp_path / "r" / "versions.json").read_text())
    assert recorded == rundir.versions()
    assert recorded["cpu"] and recorded["cpu"] != "unknown"
    assert recorded["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert recorded["torch_threads"] == torch.get_num_threads()


def test_a_resume_under_another_setup_is_said_and_recorded_once(tmp_path, capsys, monkeypatch):
    def interrupt(self, t):
        raise KeyboardInterrupt

    real = ContinualRun._train_task
    monkeypatch.setattr(ContinualRun, "_train_task", interrupt)
    run_dir = tmp_path / "r"
    assert cli.main(["run", "--sequence", "halfcheetah", "--method", "finetune", "--profile",
                     "smoke", "--set", "num_tasks=1", "--run-dir", str(run_dir), "--quiet"]) == 130
    monkeypatch.setattr(ContinualRun, "_train_task", real)
    # made to look started on another CPU, with another mujoco
    started = json.loads((run_dir / "versions.json").read_text())
    other = {**started, "cpu": "Some Other CPU", "mujoco": "0.0.1"}
    (run_dir / "versions.json").write_text(json.dumps(other))
    capsys.readouterr()
    assert cli.main(["resume", str(run_dir), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "resuming in task 0 under another setup" in err
    assert f"mujoco 0.0.1 -> {started['mujoco']}" in err
    assert f"cpu Some Other CPU -> {started['cpu']}" in err
    recorded = json.loads((run_dir / "versions.json").read_text())
    assert recorded["cpu"] == "Some Other CPU"  # what it started under stays
    assert recorded["resumed"] == [{"task": 0, "mujoco": started["mujoco"],
                                    "cpu": started["cpu"]}]
    # the setup it last ran under is this one: a second resume here says nothing more
    rundir.note_other_machine(str(run_dir), 1)
    assert capsys.readouterr().err == ""
    assert json.loads((run_dir / "versions.json").read_text()) == recorded


def test_a_resume_records_the_setup_a_run_started_without(tmp_path, capsys):
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    now = rundir.versions()
    # a run started before hypercrl recorded the machine: package versions only
    packages = {k: v for k, v in now.items() if k not in ("cpu", "cpu_capability",
                                                          "torch_threads")}
    (run_dir / "versions.json").write_text(json.dumps(packages))
    rundir.note_other_machine(str(run_dir), 2)
    err = capsys.readouterr().err
    assert "did not record its cpu, cpu_capability, torch_threads" in err
    assert f"torch_threads {now['torch_threads']}" in err
    assert "under another setup" not in err  # nothing known changed
    recorded = json.loads((run_dir / "versions.json").read_text())
    assert recorded["resumed"] == [{"task": 2, "cpu": now["cpu"],
                                    "cpu_capability": now["cpu_capability"],
                                    "torch_threads": now["torch_threads"]}]
    # from then on it compares with what that resume recorded: nothing more to say here
    rundir.note_other_machine(str(run_dir), 3)
    assert capsys.readouterr().err == ""
    assert json.loads((run_dir / "versions.json").read_text()) == recorded


def test_a_run_given_twice_is_reported_once(tmp_path):
    run = cli.start_run(_cfg(method="finetune"), str(tmp_path / "run"), quiet=True)
    first = tmp_path / "first"
    assert cli.main(["report", run, "--out", str(first)]) == 0
    # an earlier stage of the same run: its first task only
    early = _metrics(run)
    early["returns"] = {"0": early["returns"]["0"]}
    os.makedirs(tmp_path / "early")
    (tmp_path / "early" / "metrics.json").write_text(json.dumps(early))
    # the same config run elsewhere with other results: another sample, kept
    other = _metrics(run)
    other["returns"]["0"] = [[x + 1.0 for x in row] for row in other["returns"]["0"]]
    os.makedirs(tmp_path / "other")
    (tmp_path / "other" / "metrics.json").write_text(json.dumps(other))
    out = tmp_path / "again"
    assert cli.main(["report", str(tmp_path / "early"), str(first), run,
                     str(tmp_path / "other"), "--out", str(out)]) == 0
    text = (out / "REPORT.md").read_text()
    kept = str(first / "data" / "run")
    assert f"Given twice, reported once: `{tmp_path / 'early'}` (the same run as `{kept}`" in text
    assert f"`{run}` (the same run as `{kept}`" in text
    assert "Seeds: [0, 0]" in text  # the kept copy and the other sample
    assert sorted(os.listdir(out / "data")) == ["other", "run"]


def test_a_training_curve_point_is_evaluated_before_the_retrain_due_at_its_step(
        tmp_path, monkeypatch):
    # the original evaluates after MPC step k (k a multiple of eval_every) and retrains at the
    # top of step k + 1: the curve point is the model that took those steps
    import toyseq

    from hypercrl.learners.model_based import ModelBasedLearner

    events = []
    retrain, evaluate = ModelBasedLearner._retrain, ContinualRun._evaluate

    def logged_retrain(self):
        events.append(("retrain", self.step - self.cfg.init_random_steps))
        return retrain(self)

    def logged_evaluate(self, i, final):
        events.append(("eval", self.progress.step - self.cfg.init_random_steps, final))
        return evaluate(self, i, final)

    monkeypatch.setattr(ModelBasedLearner, "_retrain", logged_retrain)
    monkeypatch.setattr(ContinualRun, "_evaluate", logged_evaluate)
    seq = toyseq.sequence(1)
    cfg = from_sequence(seq, "smoke", "finetune", num_tasks=1, init_random_steps=10,
                        mpc_steps=8, retrain_every=4, eval_every=4, curve_episodes=1,
                        eval_episodes=1, train_iters=2, horizon=2, population=8, elites=2,
                        iterations=1)
    ContinualRun(cfg, seq, str(tmp_path), quiet=True, tensorboard=False).run()
    assert events == [("retrain", 0), ("eval", 4, False), ("retrain", 4), ("eval", 8, False),
                      ("eval", 8, True)]
