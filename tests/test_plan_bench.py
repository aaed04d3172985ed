"""``hypercrl bench plan`` runs and reports every variant (a smoke test, not a timing)."""

from __future__ import annotations

import json

import pytest

from hypercrl.bench import family, plan


def test_bench_plan_quick_prints_json(capsys, monkeypatch):
    tiny = {
        "state_spec": ("delta", "angle", "delta"), "action_dim": 2, "hidden": (8, 8),
        "probabilistic": True, "K": 16, "H": 3, "elites": 4, "init_std": 1.0, "iterations": 5,
    }
    monkeypatch.setattr(family, "setting", lambda name: tiny)
    monkeypatch.setitem(plan.SQUARE_N, "cpu", 64)
    assert plan.main(["--quick", "--device", "cpu", "--families", "push"]) == 0
    report = json.loads(capsys.readouterr().out)
    result = report["devices"]["cpu"]["settings"]["push"]
    assert "error" not in result
    assert result["evaluations_per_plan"] == 16 * 3 * 6  # K * H * (5 refits + final draw)
    # input: 2 plain dims, cos and sin of the angle, 2 actions; output: the mean head only
    assert result["mlp_macs_per_evaluation"] == 6 * 8 + 8 * 8 + 8 * 3
    assert set(result["variants"]) == {"eager", "plain_loop", "plain_loop_unfused_model"}
    for variant in result["variants"].values():
        assert variant["ms_per_plan_step"] > 0 and variant["gflops"] >= 0


def test_bench_plan_times_ensembles(capsys, monkeypatch):
    tiny = {
        "state_spec": ("delta", "delta"), "action_dim": 2, "hidden": (8, 8),
        "probabilistic": False, "K": 16, "H": 3, "elites": 4, "init_std": 1.0, "iterations": 5,
    }
    monkeypatch.setattr(family, "setting", lambda name: tiny)
    monkeypatch.setitem(plan.SQUARE_N, "cpu", 64)
    assert plan.main(["--quick", "--device", "cpu", "--families", "push",
                      "--ensembles", "1,3"]) == 0
    result = json.loads(capsys.readouterr().out)["devices"]["cpu"]["settings"]["push"]
    assert {"eager", "ensemble3"} <= set(result["variants"])
    assert "error" not in result["variants"]["ensemble3"]
    params = result["hnet_params_per_ensemble_size"]
    # the same hypernetwork; two more embeddings of 10 for the two more members
    assert params["3"] - params["1"] == 20


# the original's model shapes and CEM settings (reference §2, §4.1), as the benches time them
ORIGINAL = {
    "push": dict(in_dim=12, out_dim=10, hidden=(200, 200), probabilistic=False, K=500, H=20,
                 elites=40, init_std=1.0, iterations=5),
    "door": dict(in_dim=35, out_dim=26, hidden=(200,) * 4, probabilistic=True, K=2000, H=10,
                 elites=40, init_std=0.5, iterations=5),
    "halfcheetah": dict(out_dim=18, hidden=(200,) * 4, probabilistic=True, K=500, H=30,
                        elites=50, init_std=1.0, iterations=5),
}


@pytest.mark.parametrize("name", sorted(ORIGINAL))
def test_bench_settings_are_the_families_paper_settings(name):
    setting = family.setting(name)
    assert {k: setting[k] for k in ORIGINAL[name]} == ORIGINAL[name]
    assert setting["method_options"]["hnet_hidden"] == \
        {"push": (50, 50), "door": (256, 256), "halfcheetah": (256, 256)}[name]


def test_bench_plan_refuses_an_unknown_family(capsys):
    with pytest.raises(SystemExit):
        plan.main(["--quick", "--families", "pusher"])
    assert "--families: unknown task family ['pusher']; valid: ['push'" in capsys.readouterr().err
