"""A wrong flag or file given to a benchmark (``hypercrl bench NAME``) or a launch/ script is
one clear error naming the flag or the file and what is wrong, with exit status 2, before
anything long runs; never a traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest
from launchtools import launch_module

from hypercrl import cli


def _code(call, argv) -> int:
    """The exit status of ``call(argv)``: its return value, or the SystemExit's code."""
    try:
        return int(call(argv) or 0)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1


def _bench(*argv) -> int:
    return _code(cli.main, ["bench", *argv])


def _error(capsys) -> str:
    """stderr of the last command: its last line is the error; no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def _recording(path, episodes=(8, 8)) -> str:
    """Two tasks in launch/record.py's format, ``episodes[j]`` episodes of 10 transitions."""
    rng = np.random.default_rng(0)
    arrays = {"family": np.array("push"), "backend": np.array("none"),
              "state_kinds": np.array(["delta"] * 4), "task_names": np.array(["a", "b"])}
    for j, n in enumerate(episodes):
        arrays.update({f"s{j}": rng.standard_normal((10 * n, 4)).astype(np.float32),
                       f"a{j}": rng.standard_normal((10 * n, 2)).astype(np.float32),
                       f"s2{j}": rng.standard_normal((10 * n, 4)).astype(np.float32),
                       f"ep{j}": np.repeat(np.arange(n), 10).astype(np.int32),
                       f"scripted{j}": np.zeros(10 * n, bool)})
    np.savez(path, **arrays)
    return str(path)


FAST_CL = ["--methods", "finetune", "--profile", "smoke", "--steps", "2", "--probe", "1"]
FAST_INFER = ["--method", "finetune", "--profile", "smoke", "--steps", "1", "--windows", "1"]


# --- hypercrl bench train -----------------------------------------------------------------

@pytest.mark.parametrize("flag, value", [("--repeats", "0"), ("--repeats", "-1"),
                                         ("--warmup", "-1")])
def test_bench_train_refuses_a_count_out_of_range(flag, value, capsys):
    argv = ["--families", "push", "--warmup", "0", "--repeats", "1", flag, value]
    assert _bench("train", *argv) == 2
    line = _error(capsys)
    assert f"argument {flag}:" in line and value in line
    assert capsys.readouterr().out == ""


# --- hypercrl bench cl / infer: the recording -----------------------------------------------

@pytest.mark.parametrize("bench", ["cl", "infer"])
@pytest.mark.parametrize("content, says", [(b"", "empty"), (b"junk\n", "not an .npz"),
                                           (b"PK\x03\x04broken", "not an .npz")])
def test_a_file_that_is_no_npz_is_one_line_naming_it(bench, content, says, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    assert _bench(bench, str(bad)) == 2
    line = _error(capsys)
    assert str(bad) in line and "not a recording of launch/record.py" in line and says in line
    assert "pickled" not in line


@pytest.mark.parametrize("bench, fast", [("cl", FAST_CL), ("infer", FAST_INFER)])
def test_a_recording_with_too_few_episodes_says_which_task_and_how_many(bench, fast,
                                                                         tmp_path, capsys):
    data = _recording(tmp_path / "rec.npz", episodes=(8, 3))
    assert _bench(bench, data, *fast) == 2
    line = _error(capsys)
    assert str(data) in line and "task 1 (b) has 3 episodes" in line
    assert "at least 4" in line
    assert "states is empty" not in line


def test_bench_cl_checks_md_before_it_runs(tmp_path, capsys):
    data = _recording(tmp_path / "rec.npz")
    md = tmp_path / "nowhere" / "x.md"
    assert _bench("cl", data, *FAST_CL, "--md", str(md)) == 2
    line = _error(capsys)
    assert f"--md {md}" in line and "no folder" in line
    assert capsys.readouterr().out == ""  # nothing ran
    assert _bench("cl", data, *FAST_CL, "--md", str(tmp_path)) == 2
    assert f"--md {tmp_path}" in _error(capsys)


def test_bench_cl_prints_its_result_before_writing_the_table(tmp_path, capsys, monkeypatch):
    from hypercrl.bench import cl

    def full(result):
        raise OSError(28, "No space left on device", str(tmp_path / "t.md"))

    monkeypatch.setattr(cl, "markdown", full)
    data = _recording(tmp_path / "rec.npz")
    capsys.readouterr()
    assert _bench("cl", data, *FAST_CL, "--md", str(tmp_path / "t.md")) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["results"][0]["method"] == "finetune"
    assert "t.md: No space left on device" in captured.err


# --- integer lists: budget, sweep -----------------------------------------------------------

@pytest.mark.parametrize("argv, flag", [
    (["budget", "/nonexistent-run", "--tasks", "a"], "--tasks"),
    (["budget", "/nonexistent-run", "--seeds", "0,a"], "--seeds"),
    (["sweep", "--seeds", "a"], "--seeds"),
    (["cl", "/nonexistent.npz", "--seeds", "x"], "--seeds"),
    (["infer", "/nonexistent.npz", "--windows", "1,two"], "--windows"),
])
def test_an_integer_list_names_its_flag_and_value(argv, flag, capsys):
    assert _bench(*argv) == 2
    line = _error(capsys)
    value = argv[-1]
    assert f"argument {flag}: {value!r}: expected integers separated by commas" in line


# --- launch/plan_check.py -------------------------------------------------------------------

@pytest.fixture
def fake_run(tmp_path):
    """A run folder with a config and a model saved after task 0 (never loaded here)."""
    cfg = cli.resolve_config("halfcheetah", "mujoco", "hnet", "smoke", ["num_tasks=1"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(cfg.to_json())
    (run_dir / "model_after0.pt").write_bytes(b"")
    return str(run_dir)


def test_plan_check_names_a_missing_run_or_model(fake_run, tmp_path, capsys):
    plan_check = launch_module("plan_check")
    missing = tmp_path / "missing"
    assert _code(plan_check.main, [str(missing)]) == 2
    assert f"{missing}: no config.json (not a run directory)" in _error(capsys)
    assert _code(plan_check.main, [fake_run, "--after", "9"]) == 2
    assert "no model saved after task 9; saved: [0]" in _error(capsys)


@pytest.mark.parametrize("flag", ["--every", "--steps"])
def test_plan_check_refuses_a_count_below_one(flag, tmp_path, capsys):
    assert _code(launch_module("plan_check").main, [str(tmp_path), flag, "0"]) == 2
    assert f"argument {flag}: must be 1 or more, got 0" in _error(capsys)


# --- launch/record.py -----------------------------------------------------------------------

@pytest.mark.parametrize("random, scripted", [("0", "0"), ("-1", "0"), ("0", "-2")])
def test_record_needs_episodes(random, scripted, tmp_path, capsys):
    out = tmp_path / "r.npz"
    argv = ["--tasks", "0", "--random", random, "--scripted", scripted, "--out", str(out)]
    assert _code(launch_module("record").main, argv) == 2
    line = _error(capsys)
    assert "--random" in line or "--scripted" in line
    assert not out.exists()


@pytest.mark.parametrize("noise", ["-0.1", "nan", "inf", "x"])
def test_record_refuses_a_noise_that_is_no_standard_deviation(noise, tmp_path, capsys):
    out = tmp_path / "r.npz"
    argv = ["--tasks", "0", "--random", "0", "--scripted", "1", "--noise", noise,
            "--out", str(out)]
    assert _code(launch_module("record").main, argv) == 2
    assert "argument --noise:" in _error(capsys)
    assert not out.exists()


def test_record_halfcheetah_has_no_scripted_episodes(tmp_path, capsys):
    out = tmp_path / "r.npz"
    argv = ["--sequence", "halfcheetah", "--tasks", "0", "--random", "0", "--out", str(out)]
    assert _code(launch_module("record").main, argv) == 2
    assert "halfcheetah has no scripted policy" in _error(capsys)


def test_record_checks_out_before_recording(tmp_path, capsys):
    record = launch_module("record")
    calls = []
    record.record = lambda *a, **k: calls.append(a)  # recording must not start
    afile = tmp_path / "afile"
    afile.write_text("x")
    folder = tmp_path / "d.npz"
    folder.mkdir()
    for out in (afile / "x.npz", folder):
        assert _code(record.main, ["--tasks", "0", "--out", str(out)]) == 2
        line = _error(capsys)
        assert "--out" in line and str(out) in line
    assert calls == []


def test_record_reports_the_file_it_wrote(tmp_path, capsys):
    argv = ["--tasks", "0", "--random", "1", "--scripted", "0", "--out", str(tmp_path / "x/rec")]
    assert _code(launch_module("record").main, argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["out"] == str(tmp_path / "x" / "rec.npz")
    assert (tmp_path / "x" / "rec.npz").is_file()


# --- launch/learnability.py, launch/synthetic.py ---------------------------------------------

def test_learnability_names_an_unknown_method(capsys):
    argv = ["--methods", "finetune,nope", "--episodes", "2", "--fits", "1", "--steps", "1"]
    assert _code(launch_module("learnability").main, argv) == 2
    line = _error(capsys)
    assert "--methods: unknown method 'nope'" in line and "finetune" in line


@pytest.mark.parametrize("argv, says", [
    (["--episodes", "1"], "--episodes 1: the held-out episodes (every 4th from the 2nd) need 2"),
    (["--fits", "0"], "argument --fits: must be 1 or more, got 0"),
    (["--task", "9"], "--task 9: the push sequence has tasks 0-4"),
    (["--sequence", "nope"], "unknown task family 'nope'"),
])
def test_learnability_checks_its_numbers_before_collecting(argv, says, capsys):
    assert _code(launch_module("learnability").main, ["--methods", "finetune", *argv]) == 2
    assert says in _error(capsys)


@pytest.mark.parametrize("flag", ["--steps", "--tasks"])
def test_synthetic_refuses_a_count_below_one(flag, capsys):
    assert _code(launch_module("synthetic").main, [flag, "-1"]) == 2
    assert f"argument {flag}: must be 1 or more, got -1" in _error(capsys)
