"""What a user gets wrong, or what goes wrong under a run, is one line on stderr naming the
field or the path and the problem, exit status 2, and no file of an existing run changes; no
run overwrites another's files."""

import builtins
import hashlib
import json
import os
import stat
import tempfile

import pytest

from hypercrl import cli, rundir
from hypercrl.io import atomic_save
from hypercrl.learners.model_based import ModelBasedLearner
from hypercrl.loop import run_name

SMOKE = ["--sequence", "halfcheetah", "--profile", "smoke", "--set", "num_tasks=1", "--quiet"]


def _run_argv(run_dir, *extra):
    return ["run", *SMOKE, "--run-dir", str(run_dir), *extra]


def _snapshot(root):
    """Every file below ``root``: relative path -> (mode, mtime, sha256)."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            st = os.stat(path)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_mtime_ns, digest)
    return out


def _error_line(capsys):
    """stderr of the last command, which must be exactly one line."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def existing(tmp_path_factory):
    """A finished run (halfcheetah, smoke, one task) that no failing command may touch."""
    run_dir = str(tmp_path_factory.mktemp("existing") / "run")
    assert cli.main(_run_argv(run_dir)) == 0
    return run_dir


@pytest.fixture
def untouched(existing):
    """Asserts after the test that no file of the existing run changed."""
    before = _snapshot(existing)
    yield existing
    assert _snapshot(existing) == before


# --- a folder that cannot be written --------------------------------------------------------
def _modes_bind():
    """Whether this process is refused writes into a folder of mode 0555 (root is not)."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o555)
        try:
            with open(os.path.join(folder, "probe"), "w"):
                pass
        except PermissionError:
            return True
        finally:
            os.chmod(folder, 0o755)
    return False


MODES_BIND = _modes_bind()


def read_only(folder, monkeypatch):
    """Make ``folder`` read-only (mode 0555). Where modes do not bind (root), the process is
    also refused what a read-only folder refuses: new entries, renames and removals in it
    (not in its subfolders, nor writes to its existing files)."""
    folder = str(folder)
    os.chmod(folder, 0o555)
    if MODES_BIND:
        return
    root = os.path.realpath(folder)

    def in_root(path):  # an entry of the read-only folder itself
        return os.path.realpath(os.path.dirname(os.path.abspath(path))) == root

    def denied(path):
        return PermissionError(13, "Permission denied", os.fspath(path))

    def creates(path):
        return in_root(path) and not os.path.exists(path)

    real_open, real_os_open = builtins.open, os.open
    real_mkdir, real_replace, real_rename = os.mkdir, os.replace, os.rename
    real_remove, real_access = os.remove, os.access

    def fake_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and set(mode) & set("wxa+") and creates(file):
            raise denied(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and creates(path):
            raise denied(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if in_root(path):
            raise denied(path)
        return real_mkdir(path, *args, **kwargs)

    def renaming(real):
        def fake(src, dst, *args, **kwargs):
            for path in (src, dst):
                if in_root(path):
                    raise denied(path)
            return real(src, dst, *args, **kwargs)
        return fake

    def fake_remove(path, *args, **kwargs):
        if in_root(path):
            raise denied(path)
        return real_remove(path, *args, **kwargs)

    def fake_access(path, mode, *args, **kwargs):
        if mode & os.W_OK and os.path.realpath(path) == root:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "replace", renaming(real_replace))
    monkeypatch.setattr(os, "rename", renaming(real_rename))
    monkeypatch.setattr(os, "remove", fake_remove)
    monkeypatch.setattr(os, "unlink", fake_remove)
    monkeypatch.setattr(os, "access", fake_access)


@pytest.fixture
def chmod_back():
    folders = []
    yield folders.append
    for folder in folders:
        os.chmod(folder, 0o755)


# --- A: one line instead of a traceback -----------------------------------------------------
def test_run_dir_that_is_a_file(tmp_path, capsys, untouched):
    path = tmp_path / "afile"
    path.write_text("mine")
    assert cli.main(_run_argv(path)) == 2
    line = _error_line(capsys)
    assert str(path) in line and "is a file, not a directory" in line
    assert path.read_text() == "mine"


def test_run_dir_under_a_file(tmp_path, capsys, untouched):
    path = tmp_path / "afile"
    path.write_text("mine")
    assert cli.main(_run_argv(path / "r")) == 2
    line = _error_line(capsys)
    assert f"{path} is a file, not a directory" in line
    assert path.read_text() == "mine"


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_run_dir_holding_a_run_without_its_config(dry_run, tmp_path, capsys, existing,
                                                  untouched):
    """What is left of a run whose config.json is gone is neither resumed nor overwritten."""
    import shutil

    left = tmp_path / "left"
    shutil.copytree(existing, left)
    os.remove(left / "config.json")
    before = _snapshot(left)
    assert cli.main(_run_argv(left, "--seed", "7", *(["--dry-run"] if dry_run else []))) == 2
    line = _error_line(capsys)
    assert f"{left} holds files of a run (checkpoint.pt, " in line and "no config.json" in line
    assert _snapshot(left) == before


def test_a_saved_model_beyond_the_runs_tasks_is_refused(tmp_path, capsys, existing,
                                                         untouched):
    import shutil

    run_dir = tmp_path / "r"
    shutil.copytree(existing, run_dir)  # one task: model_after0.pt
    shutil.copy(run_dir / "model_after0.pt", run_dir / "model_after3.pt")  # another run's
    assert cli.main(["eval", str(run_dir)]) == 2
    assert "model_after3.pt is not of this run, which has 1 tasks" in _error_line(capsys)


def test_dry_run_refuses_what_the_run_would(capsys, untouched):
    assert cli.main(_run_argv(untouched, "--seed", "5", "--dry-run")) == 2
    assert "holds a run with another config (differs in ['seed'])" in _error_line(capsys)
    assert cli.main(_run_argv(untouched, "--dry-run")) == 2
    assert "already holds this run" in _error_line(capsys)


@pytest.mark.parametrize("below", [False, True], ids=["itself", "below"])
def test_run_dir_not_writable(below, tmp_path, capsys, monkeypatch, chmod_back, untouched):
    folder = tmp_path / "ro"
    folder.mkdir()
    read_only(folder, monkeypatch)
    chmod_back(folder)
    run_dir = folder / "r" if below else folder
    assert cli.main(_run_argv(run_dir)) == 2
    line = _error_line(capsys)
    assert f"run directory {run_dir}" in line and "is not writable" in line
    assert os.listdir(folder) == []


def test_report_of_a_metrics_json_of_another_shape(tmp_path, capsys, untouched):
    shapes = {
        "list": [],
        "no-config": {"tasks": ["a"], "returns": {}},
        "config-wrong": {"config": {"sequence": 3}},
        "rows-not-lists": None,  # filled below from the real file
    }
    with open(os.path.join(untouched, "metrics.json")) as f:
        good = json.load(f)
    shapes["rows-not-lists"] = {**good, "returns": {"0": 5}}
    shapes["row-index"] = {**good, "returns": {"x": [[1.0]]}}
    shapes["cells"] = {**good, "successes": {"0": [["yes"]]}}
    shapes["curve"] = {**good, "eval_curve": [{"task": 0}]}
    shapes["no-tasks"] = {k: v for k, v in good.items() if k != "tasks"}
    fields = {"list": "JSON object", "no-config": "'config'", "config-wrong": "config.sequence",
              "rows-not-lists": "returns.0", "row-index": "'returns' has row 'x'",
              "cells": "successes.0", "curve": "eval_curve", "no-tasks": "'tasks'"}
    for name, data in shapes.items():
        bad = tmp_path / name
        bad.mkdir()
        (bad / "metrics.json").write_text(json.dumps(data))
        out = tmp_path / f"report-{name}"
        assert cli.main(["report", untouched, str(bad), "--out", str(out)]) == 2, name
        line = _error_line(capsys)
        assert str(bad / "metrics.json") in line and fields[name] in line, line
        assert not out.exists()


def test_report_out_pointing_at_a_file(tmp_path, capsys, untouched):
    out = tmp_path / "REPORT"
    out.write_text("mine")
    assert cli.main(["report", untouched, "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert str(out) in line and "is a file, not a directory" in line
    assert out.read_text() == "mine"
    assert cli.main(["report", untouched, "--out", str(out / "below")]) == 2
    assert f"{out} is a file" in _error_line(capsys)


@pytest.mark.parametrize("episodes", ["0", "-3"])
def test_eval_episodes_below_one(episodes, capsys, untouched):
    assert cli.main(["eval", untouched, "--episodes", episodes]) == 2
    assert _error_line(capsys) == f"hypercrl: error: --episodes must be >= 1, got {episodes}"


def test_negative_seed(tmp_path, capsys, untouched):
    run_dir = tmp_path / "r"
    assert cli.main(_run_argv(run_dir, "--seed", "-1")) == 2
    assert _error_line(capsys) == "hypercrl: error: seed must lie in [0, 4294967295], got -1"
    assert not run_dir.exists()


def test_seed_by_set_is_refused_not_ignored(tmp_path, capsys, untouched):
    run_dir = tmp_path / "r"
    assert cli.main(_run_argv(run_dir, "--set", "seed=3")) == 2
    assert "--set seed: choose it with --seed" in _error_line(capsys)
    assert not run_dir.exists()


def test_negative_seed_in_a_launch(tmp_path, capsys, untouched):
    out = tmp_path / "cmp"
    code = cli.launch_main("halfcheetah", ["--methods", "hnet", "--seeds", "-1", "--profile",
                                           "smoke", "--out", str(out), "--quiet"])
    assert code == 2
    assert "seed must lie in [0, " in _error_line(capsys)
    assert not out.exists()
    assert cli.launch_main("halfcheetah", ["--seeds", "0,x", "--out", str(out)]) == 2
    assert "--seeds '0,x'" in _error_line(capsys)


@pytest.mark.parametrize("value", ["nan", "inf", "-0.5", "1"])
def test_heldout_fraction_out_of_range(value, tmp_path, capsys, untouched):
    run_dir = tmp_path / "r"
    assert cli.main(_run_argv(run_dir, "--set", f"heldout_fraction={value}")) == 2
    line = _error_line(capsys)
    assert "heldout_fraction must lie in [0, 1)" in line
    assert not run_dir.exists()


@pytest.mark.parametrize("when", ["model", "metrics"])
def test_run_dir_turning_read_only_mid_run(when, tmp_path, capsys, monkeypatch, chmod_back,
                                           untouched):
    """The issue's PermissionError on metrics.json.tmp (and on the saved model): one line
    naming the file; the last checkpoint resumes once the folder is writable again."""
    run_dir = tmp_path / "r"
    restore = monkeypatch.context()
    mp = restore.__enter__()
    if when == "model":  # read-only before the task's model is saved
        real = ModelBasedLearner.end_task

        def end_task(self):
            read_only(run_dir, mp)
            return real(self)

        mp.setattr(ModelBasedLearner, "end_task", end_task)
        name = "model_after0.pt"
    else:  # read-only after the model is saved: metrics.json.tmp is the next new file
        real = ModelBasedLearner.save

        def save(self, path):
            real(self, path)
            read_only(run_dir, mp)

        mp.setattr(ModelBasedLearner, "save", save)
        name = "metrics.json.tmp"
    chmod_back(run_dir)
    code = cli.main(_run_argv(run_dir))
    restore.__exit__(None, None, None)
    os.chmod(run_dir, 0o755)
    assert code == 2
    line = _error_line(capsys)
    assert f"{run_dir / name}: cannot write (Permission denied)" in line or (
        f"{run_dir / name}: Permission denied" in line), line
    assert f"hypercrl resume {run_dir}" in line
    assert cli.main(["resume", str(run_dir)]) == 0
    with open(run_dir / "metrics.json") as f:
        assert list(json.load(f)["returns"]) == ["0"]


def test_too_many_tasks_write_nothing(tmp_path, capsys, untouched):
    run_dir = tmp_path / "new" / "r"
    argv = _run_argv(run_dir, "--set", "num_tasks=99")
    assert cli.main(argv) == 2
    assert "num_tasks must lie in [0, 5]" in _error_line(capsys)
    assert not (tmp_path / "new").exists()


def _failing_learner(monkeypatch):
    def fail(self, cfg, seq, progress=False):
        raise ValueError("device='cuda:7': only 0 CUDA devices")

    monkeypatch.setattr(ModelBasedLearner, "__init__", fail)


def test_a_run_that_fails_to_build_leaves_no_folder(tmp_path, capsys, monkeypatch, untouched):
    _failing_learner(monkeypatch)
    run_dir = tmp_path / "new" / "deeper" / "r"
    assert cli.main(_run_argv(run_dir)) == 2
    assert "device='cuda:7'" in _error_line(capsys)
    assert not (tmp_path / "new").exists()


def test_a_run_that_fails_to_build_keeps_a_folder_that_existed(tmp_path, capsys, monkeypatch,
                                                                untouched):
    _failing_learner(monkeypatch)
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    before = _snapshot(run_dir)
    assert cli.main(_run_argv(run_dir)) == 2
    assert "device='cuda:7'" in _error_line(capsys)
    assert _snapshot(run_dir) == before


# --- B: no run overwrites another -----------------------------------------------------------
def test_video_names_differ_for_run_dirs_of_one_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = {run_name(p) for p in ("a/r", "b/r", "runs/r", "runs/a/r", str(tmp_path / "r"),
                                   "/elsewhere/runs/r")}
    assert len(names) == 6
    assert run_name("runs/push/hnet-s0") == os.path.join("push", "hnet-s0")
    assert run_name("a/r") == run_name(str(tmp_path / "a" / "r"))  # one name per folder
    assert run_name("a/r").startswith("r-")


def test_videos_of_two_runs_of_one_name_do_not_collide(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for parent in ("a", "b"):
        assert cli.main(_run_argv(f"{parent}/r", "--video")) == 0
    a, b = (tmp_path / "videos" / run_name(p) for p in ("a/r", "b/r"))
    assert a != b
    for folder in (a, b):
        assert (folder / "task0_after0.mp4").stat().st_size > 1000
    before = _snapshot(b)
    capsys.readouterr()
    assert cli.main(["video", "a/r", "--task", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["video"] == os.path.join("videos", run_name("a/r"), "task0_after0.mp4")
    assert _snapshot(b) == before


def _launch(out, *extra):
    return cli.launch_main("halfcheetah", ["--methods", "hnet", "--seeds", "0", "--profile",
                                           "smoke", "--set", "num_tasks=1", "--out", str(out),
                                           "--quiet", *extra])


@pytest.mark.slow
def test_launch_rerun_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert _launch(out) == 0
    before = _snapshot(out)
    assert _launch(out, "--set", "mpc_steps=10") == 2
    line = _error_line(capsys)
    assert f"{out} holds a sweep with other settings" in line
    assert "--set mpc_steps (unset in the sweep, 10 now)" in line
    assert _launch(out, "--set", "method.beta=0.5") == 2
    assert "--set method.beta (unset in the sweep, 0.5 now)" in _error_line(capsys)
    code = cli.launch_main("halfcheetah", ["--methods", "hnet", "--seeds", "0", "--profile",
                                           "quick", "--set", "num_tasks=1", "--out", str(out)])
    assert code == 2
    assert "--profile (smoke in the sweep, quick now)" in _error_line(capsys)
    assert _snapshot(out) == before
    assert _launch(out) == 0  # the same settings again: the finished run is kept


# --- eval agrees with the run's own performance matrix --------------------------------------
def test_eval_returns_equal_the_runs_own_matrix(tmp_path, capsys):
    run_dir = tmp_path / "r"
    argv = ["run", "--sequence", "halfcheetah", "--profile", "smoke", "--set", "num_tasks=2",
            "--set", "eval_episodes=2", "--run-dir", str(run_dir), "--quiet"]
    assert cli.main(argv) == 0
    with open(run_dir / "metrics.json") as f:
        own = json.load(f)["returns"]
    for after in ("0", "1"):  # by default the run's own number of episodes
        capsys.readouterr()
        extra = ["--episodes", "2"] if after == "0" else []
        assert cli.main(["eval", str(run_dir), "--after", after, *extra]) == 0
        tasks = json.loads(capsys.readouterr().out)["tasks"]
        assert [tasks[j]["returns"] for j in sorted(tasks)] == own[after]


# --- one mode for every file of a run -------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_file_of_a_run_has_one_mode(umask, tmp_path, capsys):
    old = os.umask(umask)
    try:
        run_dir = tmp_path / "r"
        assert cli.main(_run_argv(run_dir)) == 0
        atomic_save({"x": 1}, tmp_path / "alone.pt")
    finally:
        os.umask(old)
    want = 0o666 & ~umask
    modes = {path: stat.S_IMODE(mode) for path, (mode, _, _) in _snapshot(run_dir).items()}
    assert {"checkpoint.pt", "model_after0.pt", "config.json", "metrics.json"} <= set(modes)
    assert modes == dict.fromkeys(modes, want)
    assert stat.S_IMODE((tmp_path / "alone.pt").stat().st_mode) == want


# --- bench subcommands show their own options -----------------------------------------------
@pytest.mark.parametrize("name", sorted(cli.BENCHES))
def test_bench_help_is_the_benchmarks_own(name, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: hypercrl bench {name} ")
    assert "options:" in out and "--help" in out


def test_bench_without_a_name(capsys):
    assert cli.main(["bench", "--help"]) == 0
    assert "hypercrl bench NAME --help" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "choose a benchmark: budget, cl, env, eval, infer, init, loop, plan, sweep, train" in err


def test_a_run_being_written_is_neither_resumed_nor_started_over(tmp_path, capsys,
                                                                 monkeypatch):
    """While a process holds a run folder's lock (a run or resume still going), `resume` and
    `run` into it stop with one line naming the holder, and write nothing."""
    from hypercrl.io import file_lock
    from hypercrl.loop import ContinualRun

    def interrupt(self, t):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # a run stopped before its task: resumable
        m.setattr(ContinualRun, "_train_task", interrupt)
        run_dir = str(tmp_path / "run")
        assert cli.main(_run_argv(run_dir)) == 130
    capsys.readouterr()
    with file_lock(os.path.join(run_dir, rundir.RUN_LOCK), wait=False) as held:
        held.write("process 4242 on elsewhere\n")
        held.flush()
        before = _snapshot(run_dir)
        assert cli.main(["resume", run_dir]) == 2
        line = _error_line(capsys)
        assert run_dir in line and "process 4242 on elsewhere" in line
        assert "being written by another process" in line
        assert _snapshot(run_dir) == before
        empty = tmp_path / "new"
        empty.mkdir()
        with file_lock(str(empty / rundir.RUN_LOCK), wait=False):
            assert cli.main(_run_argv(empty)) == 2
            assert "being written by another process (unknown)" in _error_line(capsys)
            assert sorted(os.listdir(empty)) == [rundir.RUN_LOCK]
    assert cli.main(["resume", run_dir]) == 0  # the holder has gone: on it goes
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert len(json.load(f)["returns"]) == 1


def test_a_locked_run_is_named_whatever_it_has_written(existing, tmp_path, capsys,
                                                      untouched):
    """A process holding the lock of a finished run, or of a folder with no checkpoint yet:
    `resume`, `run` and `run --dry-run` name it instead of what they find in the folder."""
    from hypercrl.io import file_lock

    with file_lock(os.path.join(existing, rundir.RUN_LOCK), wait=False):
        for argv in (["resume", existing], _run_argv(existing),
                     _run_argv(existing, "--dry-run")):
            assert cli.main(argv) == 2
            assert "being written by another process" in _error_line(capsys)
    begun = tmp_path / "begun"  # a run before its first checkpoint: config.json only
    begun.mkdir()
    with open(os.path.join(existing, "config.json")) as f:
        (begun / "config.json").write_text(f.read())
    with file_lock(str(begun / rundir.RUN_LOCK), wait=False):
        assert cli.main(["resume", str(begun)]) == 2
        assert "being written by another process" in _error_line(capsys)
    assert cli.main(["resume", str(begun)]) == 2  # and once it has gone: what is missing
    assert "no checkpoint" in _error_line(capsys)


def test_a_run_holds_its_folders_lock_while_it_runs(tmp_path, monkeypatch):
    from hypercrl.io import file_lock

    real = cli._run_interruptible
    seen = []

    def check(run, run_dir):
        with pytest.raises(BlockingIOError):
            with file_lock(os.path.join(run_dir, rundir.RUN_LOCK), wait=False):
                pass
        seen.append(run_dir)
        return real(run, run_dir)

    monkeypatch.setattr(cli, "_run_interruptible", check)
    run_dir = str(tmp_path / "run")
    assert cli.main(_run_argv(run_dir)) == 0
    assert seen == [run_dir]
    with file_lock(os.path.join(run_dir, rundir.RUN_LOCK), wait=False):  # let go at the end
        pass


def test_a_file_system_without_locks_runs_unlocked_saying_so(tmp_path, capsys, monkeypatch):
    import errno
    import fcntl

    def no_locks(f, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    run_dir = str(tmp_path / "run")
    assert cli.main(_run_argv(run_dir)) == 0
    err = capsys.readouterr().err
    assert "cannot lock .lock (No locks available)" in err and run_dir in err
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert len(json.load(f)["returns"]) == 1


def test_a_run_begun_here_between_the_check_and_the_lock_is_left_alone(tmp_path, capsys,
                                                                       monkeypatch, existing):
    """Another process began a run in the folder after this one checked it and before it
    took the lock: this one stops, and deletes nothing of the other's."""
    import contextlib

    real = cli.run_lock
    run_dir = tmp_path / "run"
    with open(os.path.join(existing, "config.json")) as f:
        theirs = f.read().replace('"seed": 0', '"seed": 7')

    @contextlib.contextmanager
    def raced(path):
        (run_dir / "config.json").write_text(theirs)  # the other process's first file
        with real(path):
            yield

    monkeypatch.setattr(cli, "run_lock", raced)
    assert cli.main(_run_argv(run_dir)) == 2
    assert "holds a run with another config" in _error_line(capsys)
    assert (run_dir / "config.json").read_text() == theirs


def test_resume_reads_the_checkpoint_again_once_it_holds_the_lock(tmp_path, capsys,
                                                                  monkeypatch, existing):
    """Another process finished the run after this resume first read its checkpoint: the
    resume finds that out under the lock and runs nothing."""
    import contextlib
    import shutil

    from hypercrl.loop import ContinualRun

    def interrupt(self, t):
        raise KeyboardInterrupt

    run_dir = str(tmp_path / "run")
    with monkeypatch.context() as m:
        m.setattr(ContinualRun, "_train_task", interrupt)
        assert cli.main(_run_argv(run_dir)) == 130
    real = cli.run_lock

    @contextlib.contextmanager
    def finished_meanwhile(path):
        for name in ("checkpoint.pt", "metrics.json", "model_after0.pt"):
            shutil.copy(os.path.join(existing, name), os.path.join(path, name))
        with real(path):
            yield

    monkeypatch.setattr(cli, "run_lock", finished_meanwhile)
    monkeypatch.setattr(ContinualRun, "run", lambda self: pytest.fail("ran again"))
    capsys.readouterr()
    assert cli.main(["resume", run_dir]) == 0
    assert "finished (1 of 1 tasks); nothing to resume" in capsys.readouterr().err
