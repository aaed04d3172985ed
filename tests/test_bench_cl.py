"""``hypercrl bench cl``: methods through one sequence of recorded transitions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hypercrl.cli import main
from hypercrl.synthetic import synthetic_tasks


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> str:
    """Three synthetic tasks in launch/record.py's format (8 episodes of 50 transitions)."""
    path = tmp_path_factory.mktemp("cl") / "rec.npz"
    tasks = synthetic_tasks(3, state_dim=4, action_dim=2, samples=400, seed=0)
    arrays = {
        "family": np.array("push"),
        "backend": np.array("none"),
        "state_kinds": np.array(["delta"] * 4),
        "task_names": np.array(["a", "b", "c"]),
    }
    for j, (s, a, s2) in enumerate(tasks):
        arrays.update(
            {
                f"s{j}": s,
                f"a{j}": a,
                f"s2{j}": s2,
                f"ep{j}": np.repeat(np.arange(8), 50),
                f"scripted{j}": np.zeros(400, bool),
            }
        )
    np.savez(path, **arrays)
    return str(path)


def test_it_reports_error_retention_speed_and_size_per_method(recording, tmp_path, capsys):
    md = tmp_path / "t.md"
    assert (
        main(
            [
                "bench",
                "cl",
                recording,
                "--methods",
                "hnet,lowrank_hnet,finetune",
                "--profile",
                "smoke",
                "--steps",
                "60",
                "--probe",
                "20",
                "--md",
                str(md),
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    rows = {r["method"]: r for r in out["results"]}
    assert list(rows) == ["hnet", "lowrank_hnet", "finetune"]
    for r in rows.values():
        e = np.array(r["errors"], dtype=float)
        assert np.isfinite(np.tril(e)).all() and np.isnan(e[np.triu_indices(3, 1)]).all()
        assert r["final_error"] == pytest.approx(e[2].tolist())
        assert r["retention"] == pytest.approx((e[2, :2] / np.diag(e)[:2]).tolist())
        assert r["ms_per_step"]["first_task"] > 0 and r["convergence"] > 0
    # smoke sizes: target 16-16 on 4 + 2 inputs; hypernetworks 8-8
    assert rows["finetune"]["params"] == (6 * 16 + 16) + (16 * 16 + 16) + (16 * 4 + 4)
    assert rows["lowrank_hnet"]["params"] < rows["hnet"]["params"]
    assert md.read_text().count("\n") == 2 + 3


def test_a_file_that_is_not_a_recording_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    assert main(["bench", "cl", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a recording of launch/record.py" in err and str(bad) in err
    assert main(["bench", "cl", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err


def test_a_row_may_change_its_methods_options(recording, capsys):
    args = ["bench", "cl", recording, "--profile", "smoke", "--steps", "30", "--probe", "10"]
    methods = "mip_hnet,mip_hnet:residual=false:hnet_hidden=[4,4],hnet:lr=1e-2"
    assert main([*args, "--methods", methods]) == 0
    rows = {r["method"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert list(rows) == ["mip_hnet", "mip_hnet:residual=false:hnet_hidden=[4,4]", "hnet:lr=1e-2"]
    # a 4-4 trunk has fewer parameters than the smoke profile's 8-8
    assert rows["mip_hnet:residual=false:hnet_hidden=[4,4]"]["params"] < rows["mip_hnet"]["params"]
    assert rows["hnet:lr=1e-2"]["errors"] != rows["mip_hnet"]["errors"]


@pytest.mark.parametrize(
    "entry, message",
    [
        ("hnett", "unknown 'hnett'"),
        ("hnet:rank=4", "'rank' is not an option of hnet"),
        ("hnet:lr", "expected method:key=value"),
        ("mip_hnet:residual=maybe", "residual must be true or false"),
    ],
)
def test_a_bad_methods_entry_is_one_line_naming_it(recording, capsys, entry, message):
    with pytest.raises(SystemExit) as stop:
        main(["bench", "cl", recording, "--methods", entry])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_a_universal_embedding_is_reported_on_every_task(recording, capsys):
    args = ["bench", "cl", recording, "--profile", "smoke", "--steps", "30", "--probe", "10"]
    assert main([*args, "--methods", "interval_hnet,interval_hnet:nested=false,hnet"]) == 0
    rows = {r["method"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    universal = rows["interval_hnet"]["universal_final_error"]
    assert len(universal) == 3 and all(np.isfinite(universal))
    # boxes around N(0, 1) embeddings do not meet: no universal model; hnet has none
    assert "universal_final_error" not in rows["interval_hnet:nested=false"]
    assert "universal_final_error" not in rows["hnet"]


def test_bench_infer_trains_on_a_recording_then_tells_its_tasks_apart(recording, capsys):
    assert main(["bench", "infer", recording, "--method", "hnet:lr=1e-3", "--profile", "smoke",
                 "--steps", "300", "--windows", "1,10", "--where-changes", "0:2",
                 "--change", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["method"], out["steps_per_task"], out["tasks"]) == ("hnet:lr=1e-3", 300, 3)
    assert out["where_changes"] == [0, 2, 0.0]
    assert out["heldout_transitions"] == {"0": 100, "1": 100, "2": 100}  # 2 of 8 episodes
    one, ten = out["results"]
    assert one["windows"] == 300 and ten["windows"] == 30
    assert ten["accuracy"] > 0.9  # the synthetic tasks differ everywhere
    # a threshold no transition passes leaves nothing to score
    assert main(["bench", "infer", recording, "--profile", "smoke", "--steps", "1",
                 "--windows", "1", "--where-changes", "0:2", "--change", "1e9"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["windows"] == 0
    for bad, says in ((["--where-changes", "3"], "expected I:J"),
                      (["--method", "nope"], "--method: unknown 'nope'")):
        with pytest.raises(SystemExit):
            main(["bench", "infer", recording, *bad])
        assert says in capsys.readouterr().err
