"""Where `hypercrl video` and `hypercrl report` write: a video never replaces a file that is
not a video of its kind and leaves no temporary file; a report never drops the only copy of
a run an earlier report kept."""

import json
import os
import shutil

import numpy as np
import pytest
from test_cli_errors import _error_line, _snapshot

from hypercrl import cli
from hypercrl.config import from_sequence
from hypercrl.video import write_mp4, write_video

TINY = {"num_tasks": 1, "init_random_steps": 8, "mpc_steps": 4, "retrain_every": 4,
        "train_iters": 2, "episode_steps": 4, "eval_episodes": 1, "horizon": 2,
        "heldout_size": 8, "population": 8, "elites": 2, "iterations": 1}
FRAMES = [np.full((16, 16, 3), 40 * k, dtype=np.uint8) for k in range(4)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny push run (one task) with its checkpoint and saved model."""
    cfg = from_sequence(cli._sequence("push", "mujoco"), "smoke", "finetune", **TINY)
    return cli.start_run(cfg, str(tmp_path_factory.mktemp("video") / "run"), quiet=True)


def _files(folder):
    return sorted(os.listdir(folder))


# --- video ----------------------------------------------------------------------------------
def test_video_out_refuses_the_runs_checkpoint(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _snapshot(run_dir)
    capsys.readouterr()
    target = os.path.join(run_dir, "checkpoint.pt")
    assert cli.main(["video", run_dir, "--task", "0", "--out", target]) == 2
    line = _error_line(capsys)
    assert target in line and "'.pt'" in line and ".mp4" in line
    # a .mp4 name over a file that is no mp4 (a model copied there) is refused too
    fake = os.path.join(tmp_path, "model.mp4")
    shutil.copy(os.path.join(run_dir, "model_after0.pt"), fake)
    assert cli.main(["video", run_dir, "--task", "0", "--out", fake]) == 2
    assert "exists and is not an mp4 video" in _error_line(capsys)
    with open(fake, "rb") as f, open(os.path.join(run_dir, "model_after0.pt"), "rb") as g:
        assert f.read() == g.read()
    assert _snapshot(run_dir) == before
    assert _files(tmp_path) == ["model.mp4"]  # no videos/ folder, no temporary file


def test_video_out_may_replace_an_earlier_video(run_dir, tmp_path, capsys):
    out = tmp_path / "v.mp4"
    for _ in range(2):
        assert cli.main(["video", run_dir, "--task", "0", "--out", str(out)]) == 0
        assert out.stat().st_size > 1000
    strip = tmp_path / "s.png"
    for _ in range(2):
        assert cli.main(["video", run_dir, "--task", "0", "--out", str(strip)]) == 0
    # the strip's name over the mp4 (and the other way round): not a file of that kind
    os.replace(out, tmp_path / "was_mp4.png")
    capsys.readouterr()
    assert cli.main(["video", run_dir, "--task", "0", "--out",
                     str(tmp_path / "was_mp4.png")]) == 2
    assert "exists and is not a PNG image" in _error_line(capsys)
    assert _files(tmp_path) == ["s.png", "was_mp4.png"]


@pytest.mark.parametrize("name,problem", [
    ("folder", "is a folder"),
    ("nodir/sub/", "names a folder"),
    ("x.gif", "suffix '.gif'"),
    ("noext", "no suffix"),
    ("nodir/deeper/x.avi", "suffix '.avi'"),
])
def test_video_paths_that_are_no_video_file_are_refused_and_nothing_is_left(
        tmp_path, name, problem):
    (tmp_path / "folder").mkdir()
    before = _snapshot(tmp_path), _files(tmp_path)
    path = os.path.join(str(tmp_path), name)  # "nodir/sub/" keeps its slash
    with pytest.raises(ValueError) as err:
        write_video(path, FRAMES)
    assert str(err.value).startswith(f"{path}: {problem}")
    assert (_snapshot(tmp_path), _files(tmp_path)) == before
    assert _files(tmp_path / "folder") == []


def test_video_parents_are_made_only_for_a_path_that_passes(tmp_path):
    path = tmp_path / "new" / "deeper" / "v.png"
    assert write_video(str(path), FRAMES, strip_frames=2) == str(path)
    assert _files(tmp_path / "new" / "deeper") == ["v.png"]  # no temporary file left
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        write_video(str(tmp_path / "file" / "v.mp4"), FRAMES)
    assert (tmp_path / "file").read_text() == "mine"


def test_a_failed_write_leaves_no_temporary_file_and_the_earlier_video(tmp_path):
    path = tmp_path / "v.mp4"
    write_mp4(str(path), FRAMES)
    earlier = path.read_bytes()
    bad = [*FRAMES, np.zeros((8, 8, 3), dtype=np.uint8)]  # a frame of another size
    with pytest.raises(Exception):  # noqa: B017 - whatever the writer raises
        write_mp4(str(path), bad)
    assert _files(tmp_path) == ["v.mp4"]
    assert path.read_bytes() == earlier


# --- report ---------------------------------------------------------------------------------
def _metrics(folder):
    with open(os.path.join(folder, "metrics.json")) as f:
        return json.load(f)


def _fake_run(folder, data):
    os.makedirs(folder)
    with open(os.path.join(folder, "metrics.json"), "w") as f:
        json.dump(data, f)
    return str(folder)


def test_a_report_folder_keeps_the_runs_it_kept_when_other_runs_are_reported_into_it(
        run_dir, tmp_path, capsys):
    first = _fake_run(tmp_path / "a" / "run", _metrics(run_dir))
    rep = tmp_path / "rep"
    assert cli.main(["report", first, "--out", str(rep)]) == 0
    kept = _metrics(rep / "data" / "run")
    shutil.rmtree(tmp_path / "a")  # the report now holds the only copy of seed 0
    seed1 = _metrics(run_dir)
    seed1["config"]["seed"] = 1
    second = _fake_run(tmp_path / "b" / "run", seed1)
    capsys.readouterr()
    assert cli.main(["report", second, "--out", str(rep)]) == 0
    err = capsys.readouterr().err
    assert str(rep / "data" / "run") in err and "reported again" in err
    assert _files(rep / "data") == ["run", "run-2"]
    assert _metrics(rep / "data" / "run") == kept  # under its own name, unchanged
    assert _metrics(rep / "data" / "run-2") == seed1
    text = (rep / "REPORT.md").read_text()
    assert "Kept by an earlier report in this folder and reported again" in text
    assert f"`{rep / 'data' / 'run'}`" in text and "Seeds: [1, 0]" in text
    # the folder given again stands for both; nothing is said to be kept from before
    capsys.readouterr()
    assert cli.main(["report", str(rep)]) == 0
    assert capsys.readouterr().err == ""
    assert _files(rep / "data") == ["run", "run-2"]
    assert "Kept by an earlier report" not in (rep / "REPORT.md").read_text()


def test_a_kept_run_is_not_replaced_by_an_earlier_stage_of_itself(run_dir, tmp_path):
    two = _metrics(run_dir)  # as if it had two tasks: its later stage
    two["tasks"] = [*two["tasks"], "second"]
    two["returns"]["1"] = [two["returns"]["0"][0], two["returns"]["0"][0]]
    two["successes"]["1"] = [two["successes"]["0"][0], two["successes"]["0"][0]]
    later = _fake_run(tmp_path / "later" / "run", two)
    rep = tmp_path / "rep"
    assert cli.main(["report", later, "--out", str(rep)]) == 0
    early = dict(two, returns={"0": two["returns"]["0"]}, successes={"0": two["successes"]["0"]})
    shutil.rmtree(tmp_path / "later")
    given = _fake_run(tmp_path / "early" / "run", early)
    assert cli.main(["report", given, "--out", str(rep)]) == 0
    assert _files(rep / "data") == ["run"]
    assert _metrics(rep / "data" / "run") == two  # the furthest copy stays
    text = (rep / "REPORT.md").read_text()
    assert f"Given twice, reported once: `{given}`" in text and "tasks finished: 2 of 2" in text
    # the same run further on replaces the kept copy, silently: nothing is lost
    (tmp_path / "early" / "run" / "metrics.json").unlink()
    os.rmdir(tmp_path / "early" / "run")
    three = dict(two, tasks=[*two["tasks"], "third"],
                 returns={**two["returns"], "2": [*two["returns"]["1"], two["returns"]["0"][0]]},
                 successes={**two["successes"],
                            "2": [*two["successes"]["1"], two["successes"]["0"][0]]})
    further = _fake_run(tmp_path / "early" / "run", three)
    assert cli.main(["report", further, "--out", str(rep)]) == 0
    assert _files(rep / "data") == ["run"] and _metrics(rep / "data" / "run") == three
    assert "Kept by an earlier report" not in (rep / "REPORT.md").read_text()
