"""Smoke runs of every method on push and door, on both simulators."""

import json
import os

import numpy as np
import pytest

from hypercrl import cli
from hypercrl.cl import METHODS
from hypercrl.config import from_sequence

TINY = {
    "num_tasks": 2, "init_random_steps": 8, "mpc_steps": 4, "retrain_every": 4,
    "train_iters": 2, "episode_steps": 4, "eval_episodes": 1, "heldout_size": 8,
}
TINY_PLANNER = {"horizon": 2, "population": 8, "elites": 2, "iterations": 1}
METHOD_LIST = [*sorted(METHODS), "sb3-sac"]


def _tiny(method):
    return TINY if method == "sb3-sac" else {**TINY, **TINY_PLANNER}


def _smoke(sequence, backend, method, tmp_path):
    cfg = from_sequence(cli._sequence(sequence, backend), "smoke", method, **_tiny(method))
    run_dir = cli.start_run(cfg, str(tmp_path / f"{sequence}-{backend}-{method}"), quiet=True)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert sorted(metrics["returns"]) == ["0", "1"]
    assert len(metrics["returns"]["1"]) == 2
    assert all(np.isfinite(r).all() for r in metrics["returns"]["1"])
    assert os.path.exists(os.path.join(run_dir, "checkpoint.pt"))
    return metrics


@pytest.mark.parametrize("method", METHOD_LIST)
def test_every_method_runs_on_push_mujoco(method, tmp_path, capsys):
    _smoke("push", "mujoco", method, tmp_path)
    run_dir = str(tmp_path / f"push-mujoco-{method}")
    capsys.readouterr()
    assert cli.main(["eval", run_dir, "--after", "1", "--episodes", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(out["tasks"]) == ["0", "1"]
    assert all(np.isfinite(t["returns"]).all() for t in out["tasks"].values())
    if method == "hnet":  # evaluated again without the task id, scoring the block's moves only
        assert cli.main(["eval", run_dir, "--episodes", "1", "--set", "task_free_eval=true",
                         "--set", "infer_dims=2,3,4,5,6,7,8,9"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert all(sum(t["task_usage"]) == TINY["episode_steps"] for t in out["tasks"].values())
        assert cli.main(["eval", run_dir, "--set", "hidden=8"]) == 2
        assert "eval changes only how the saved model is evaluated" in capsys.readouterr().err
        assert cli.main(["eval", run_dir, "--set", "task_free_eval=true",
                         "--set", "infer_dims=10"]) == 2
        assert "infer_dims (10,): the push state has dims 0..9" in capsys.readouterr().err


def test_sac_leaves_no_folder_in_the_temporary_directory(tmp_path, monkeypatch):
    """SB3's ``configure(None, [])`` makes an empty ``SB3-<date>`` folder at every call; the
    SAC learner (built, trained, saved and loaded again) must not."""
    import tempfile

    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    _smoke("push", "mujoco", "sb3-sac", tmp_path)
    assert cli.main(["eval", str(tmp_path / "push-mujoco-sb3-sac"), "--episodes", "1"]) == 0
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("SB3-")]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHOD_LIST)
@pytest.mark.parametrize("sequence,backend", [("door", "mujoco"), ("push", "pybullet"),
                                              ("door", "pybullet")])
def test_every_method_runs_on_door_and_pybullet(sequence, backend, method, tmp_path):
    _smoke(sequence, backend, method, tmp_path)


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_video_of_every_seen_task_and_from_a_checkpoint(backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # videos/ is relative to the working directory
    cfg = from_sequence(cli._sequence("push", backend), "smoke", "hnet",
                        **{**_tiny("hnet"), "video": True})
    run_dir = cli.start_run(cfg, str(tmp_path / "runs" / "vid"), quiet=True)
    for name in ("task0_after0", "task0_after1", "task1_after1"):
        path = tmp_path / "videos" / "vid" / f"{name}.mp4"
        assert path.stat().st_size > 1000, name
    out = tmp_path / "again.mp4"
    assert cli.main(["video", run_dir, "--task", "1", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    import imageio.v3 as iio

    frames = iio.imread(out)
    assert frames.shape[1:] == (256, 256, 3) and frames.std() > 1.0  # not blank
    strip = tmp_path / "strip.png"  # a few frames side by side, for a page
    assert cli.main(["video", run_dir, "--task", "1", "--out", str(strip), "--frames", "4"]) == 0
    image = iio.imread(strip)
    assert image.shape == (256, 4 * 256 + 3 * 4, 3)
    assert (image[:, 256:260] == 255).all() and image[:, :256].std() > 1.0
    # the strip starts at the first frame (the mp4's copy of it is lossy)
    assert np.abs(image[:, :256].astype(int) - frames[0]).mean() < 3
