"""What every hypernetwork variant keeps of HyperCRL: the regulariser holds an earlier task,
and a saved model predicts as the one it was saved from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_continual import HNET, TASKS

from hypercrl import ContinualDynamics
from hypercrl.synthetic import split

VARIANTS = ("lowrank_hnet", "mip_hnet", "recurrent_hnet")
# interval_hnet: see tests/test_interval.py (nested boxes share a point, and forget)
SMALL = {"recurrent_hnet": {"rnn_hidden": 8, "chunk_dim": 200}}  # hnet_hidden: not used


def _task0_error(method: str, seed: int = 0, **options) -> tuple[float, float]:
    """Task 0's held-out error just after it and after a second task (400 steps each)."""
    cd = ContinualDynamics(4, 2, method, seed=seed, hidden=(64, 64), **options)
    errors = []
    for task in TASKS[:2]:
        cd.begin_task()
        cd.fit(*split(task)[0], steps=400)
        cd.end_task()
        errors.append(cd.mse(*split(TASKS[0])[1], task=0))
    return errors[0], errors[1]


# One seed's ratio after / just after spreads from 0.87 to 1.23 for every variant (seeds 0-4),
# and rounding moves it: lowrank_hnet's seed 0 gives 1.10 with two torch threads and 1.66 with
# one. So the claims are over five seeds, whatever the thread count.
SEEDS = range(5)


@pytest.fixture(scope="module")
def finetune_after() -> float:
    """finetune's mean error on task 0 after the second task (about 10x its own)."""
    return float(np.mean([_task0_error("finetune", seed)[1] for seed in SEEDS]))


@pytest.mark.parametrize("method", VARIANTS)
def test_the_regulariser_holds_an_earlier_task(method, finetune_after):
    own, after = np.array([_task0_error(method, seed, **HNET) for seed in SEEDS]).T
    assert np.median(after / own) <= 1.2, (own, after)
    # lowrank_hnet (rank 4, no base) fits this system about 10x worse than hnet (0.011
    # against 0.0009 after 600 steps: each layer is rank 4) but keeps it; finetune loses it
    assert after.mean() * 5 < finetune_after, (after, finetune_after)


@pytest.mark.parametrize("method", [*VARIANTS, "interval_hnet"])
def test_save_and_load_give_the_same_predictions(method, tmp_path):
    small = SMALL.get(method, {"hnet_hidden": (8, 8)})
    cd = ContinualDynamics(4, 2, method, seed=0, hidden=(32, 32), **small)
    for task in TASKS[:2]:
        cd.begin_task()
        cd.fit(*split(task)[0], steps=20)
        cd.end_task()
    cd.save(tmp_path / "m.pt")
    back = ContinualDynamics.load(tmp_path / "m.pt")
    s, a, _ = split(TASKS[0])[1]
    for task in (0, 1):
        assert np.array_equal(cd.predict(s, a, task=task), back.predict(s, a, task=task))


def test_bench_train_times_every_variant(monkeypatch):
    from hypercrl.bench.train import VARIANTS, size, time_steps

    monkeypatch.setenv("HYPERCRL_COMPILE", "0")  # the eager look-ahead: no compile in a test
    counts = {}
    for variant in VARIANTS:
        info = time_steps(size("push", variant), variant, 1, torch.device("cpu"), repeats=1,
                          warmup=0)
        assert info["step_s"] > 0 and info["target_params"] == 44_810
        counts[variant] = info["hnet_params"]
    assert counts["full"] == 2_288_410 and counts["chunked"] == 43_500
    assert counts["mip"] == counts["full"] + 500  # the trunk's first layer sees 2E inputs
    assert counts["lowrank"] * 10 < counts["full"] and counts["recurrent"] < 50_000


def test_bench_train_times_the_goal_ratio_in_turns(monkeypatch):
    """The speed goal's ratio, an hnet step after 4 earlier tasks against a finetune step, is
    timed in turns (one hnet step, five finetune steps); the hnet step (regularised, 2.3 M
    parameters) takes longer than the finetune one (45 k), and the ratio is the medians'."""
    from hypercrl.bench import train

    monkeypatch.setenv("HYPERCRL_COMPILE", "0")
    order = []

    def recording(step, device):
        order.append(step)
        return real(step, device)

    real = train._timed
    monkeypatch.setattr(train, "_timed", recording)
    out = train.interleaved_ratio(train.size("push"), "full", 4, torch.device("cpu"),
                                  repeats=3, warmup=1)
    assert [step is order[0] for step in order] == ([True] + [False] * 5) * 3
    assert out["step_s"] > out["finetune_step_s"] > 0
    assert out["ratio"] == out["step_s"] / out["finetune_step_s"]


def test_bench_train_builds_each_strategy_once(monkeypatch):
    """A row times the step after 4 earlier tasks alone and in turns with one strategy: the
    hypernetwork (door's: 35.6 M parameters) is built once per number of earlier tasks."""
    from hypercrl.bench import train

    monkeypatch.setenv("HYPERCRL_COMPILE", "0")
    monkeypatch.setattr(train, "VARIANTS", {"full": "hnet"})
    built = []

    def counting(setting, variant, earlier, device):
        built.append(earlier)
        return real(setting, variant, earlier, device)

    real = train._hnet_stepper
    monkeypatch.setattr(train, "_hnet_stepper", counting)
    out = train.run([torch.device("cpu")], repeats=1, warmup=0, families=["push"])
    assert built == list(train.EARLIER)
    row = out["results"][0]
    assert set(row["step_s"]) == {str(n) for n in train.EARLIER}
    assert row["interleaved_4"]["ratio"] > 0


def test_hnet_arch_names_the_variant_wherever_a_method_is_chosen(tmp_path, capsys,
                                                                 monkeypatch):
    from hypercrl import cli, sweep
    from hypercrl.bench.cl import parse_entry

    cfg = cli.resolve_config("push", "mujoco", "hnet", "smoke",
                             ["hnet_arch=lowrank", "num_tasks=1"])
    assert (cfg.method, cfg.num_tasks) == ("lowrank_hnet", 1)
    assert "rank" in cfg.method_options
    assert cli.resolve_config("push", "mujoco", "hnet", "smoke", ["hnet_arch=full"]).method \
        == "hnet"
    assert parse_entry("hnet:hnet_arch=mip:residual=false") == ("mip_hnet", {"residual": False})
    with pytest.raises(ValueError, match=r"hnet_arch='wide': unknown; choose one of \['chunked'"):
        cli.resolve_config("push", "mujoco", "hnet", "smoke", ["hnet_arch=wide"])
    with pytest.raises(ValueError, match="an option of method 'hnet' only, not 'finetune'"):
        cli.resolve_config("push", "mujoco", "finetune", "smoke", ["hnet_arch=lowrank"])
    # a launch script (a sweep): the trial and its run directory carry the variant's name
    monkeypatch.setattr(sweep, "ray_available", lambda: False)
    out = tmp_path / "cmp"
    assert cli.launch_main("push", ["--methods", "hnet", "--seeds", "0", "--profile", "smoke",
                                    "--set", "num_tasks=1", "--set", "hnet_arch=recurrent",
                                    "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    run = json.loads((out / "push-mujoco-recurrent_hnet-s0" / "config.json").read_text())
    assert run["method"] == "recurrent_hnet"
    assert cli.launch_main("push", ["--methods", "hnet,finetune", "--seeds", "0", "--profile",
                                    "smoke", "--set", "hnet_arch=mip", "--out",
                                    str(tmp_path / "bad")]) == 2
    assert "an option of method 'hnet' only, not 'finetune'" in capsys.readouterr().err


def test_bench_init_starts_every_variant_and_reports_its_scale(capsys):
    from hypercrl.bench import init

    assert init.main(["--rows", "hnet:hyperfan_in,lowrank_hnet,recurrent_hnet", "--steps", "4",
                      "--seeds", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["summary"]) == ["hnet:hyperfan_in", "lowrank_hnet:xavier",
                                    "recurrent_hnet:xavier"]
    for run in out["runs"]:
        assert len(run["init_std_ratio"]) == 3  # the 2x200 target's three weight matrices
        assert all(r > 0 for r in run["init_std_ratio"])
        assert len(run["final"]) == 3
    with pytest.raises(SystemExit):
        init.main(["--rows", "finetune"])
    assert "not a hypernetwork method" in capsys.readouterr().err
