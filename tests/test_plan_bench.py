"""``hypercrl bench plan`` runs and reports every variant (a smoke test, not a timing)."""

from __future__ import annotations

import json

from hypercrl.bench import plan


def test_bench_plan_quick_prints_json(capsys, monkeypatch):
    tiny = {
        "state_spec": ("delta", "angle", "delta"), "action_dim": 2, "hidden": (8, 8),
        "probabilistic": True, "K": 16, "H": 3, "elites": 4, "init_std": 1.0,
    }
    monkeypatch.setitem(plan.SETTINGS, "tiny", tiny)
    monkeypatch.setitem(plan.SQUARE_N, "cpu", 64)
    assert plan.main(["--quick", "--device", "cpu", "--settings", "tiny"]) == 0
    report = json.loads(capsys.readouterr().out)
    result = report["devices"]["cpu"]["settings"]["tiny"]
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
        "probabilistic": False, "K": 16, "H": 3, "elites": 4, "init_std": 1.0,
    }
    monkeypatch.setitem(plan.SETTINGS, "tiny", tiny)
    monkeypatch.setitem(plan.SQUARE_N, "cpu", 64)
    assert plan.main(["--quick", "--device", "cpu", "--settings", "tiny",
                      "--ensembles", "1,3"]) == 0
    result = json.loads(capsys.readouterr().out)["devices"]["cpu"]["settings"]["tiny"]
    assert {"eager", "ensemble3"} <= set(result["variants"])
    assert "error" not in result["variants"]["ensemble3"]
    params = result["hnet_params_per_ensemble_size"]
    # the same hypernetwork; two more embeddings of 10 for the two more members
    assert params["3"] - params["1"] == 20
