"""The speed work: phase timing, ``bench loop`` and ``bench budget``, the fused look-ahead
path of an hnet step, the clip and malloc helpers. Behaviour, never timings."""

from __future__ import annotations

import json
import os
import platform

import pytest
import torch

from hypercrl import cli, timing
from hypercrl.bench import budget, loop
from hypercrl.cl import strategy_class
from hypercrl.cl.base import clip_grad_norm
from hypercrl.cpu import flush_denormals, keep_freed_memory
from hypercrl.model import TargetNet
from hypercrl.timing import PhaseTimer


def test_phase_times_are_exclusive_and_add_up(monkeypatch):
    clock = {"now": 0.0}  # a fake clock: the test measures the bookkeeping, not sleep()
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock["now"])

    def spend(seconds):
        clock["now"] += seconds

    timer = PhaseTimer()
    with timer.phase("outer"):
        spend(2.0)
        with timer.phase("inner"):
            spend(3.0)
        spend(0.5)
        with timer.phase("inner"):
            spend(1.0)
    assert timer.calls == {"outer": 1, "inner": 2}
    assert timer.seconds == {"inner": 4.0, "outer": 2.5}  # the inner phases are not in outer
    assert sum(timer.seconds.values()) == clock["now"]
    before = timer.snapshot()
    with timer.phase("outer"):
        spend(1.0)
    assert PhaseTimer.since(timer.snapshot(), before) == {"outer": 1.0}


def test_a_run_writes_its_seconds_per_phase_per_task(tmp_path):
    cfg = cli.resolve_config("push", "mujoco", "hnet", "smoke", ["num_tasks=2"])
    run_dir = cli.start_run(cfg, str(tmp_path / "run"), quiet=True)
    with open(os.path.join(run_dir, "timing.json")) as f:
        seconds = json.load(f)["seconds"]
    assert sorted(seconds) == ["0", "1"]
    for phases in seconds.values():
        assert {"env", "plan", "train", "eval", "checkpoint"} <= set(phases)
        assert all(v > 0 for v in phases.values())


def test_bench_loop_reports_every_phase_and_the_rates(capsys):
    assert loop.main(["--profile", "smoke", "--families", "push", "--methods",
                      "hnet,finetune", "--tasks", "2", "--set", "mpc_steps=12"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in report["results"]] == ["hnet", "finetune"]
    for row in report["results"]:
        assert set(row["seconds"]) == {*loop.PHASES, "other"}
        assert sum(row["seconds"].values()) == pytest.approx(row["total_s"], rel=1e-6)
        assert sum(row["share"].values()) == pytest.approx(1.0)
        # smoke: 12 MPC steps per task, retrained every 10 for 5 steps (steps 0 and 10)
        assert row["plan_steps"] == 2 * 12
        assert row["gradient_steps"] == 2 * 2 * 5
        assert row["plan_steps_per_s"] > 0 and row["gradient_steps_per_s"] > 0
        assert sorted(row["per_task_s"]) == ["0", "1"]


def test_bench_budget_compares_planners_on_the_same_model(tmp_path, capsys):
    cfg = cli.resolve_config("push", "mujoco", "finetune", "smoke", ["num_tasks=1"])
    run_dir = cli.start_run(cfg, str(tmp_path / "run"), quiet=True)
    assert budget.main([run_dir, "--planners", "", "", "planner=icem,population=8",
                        "--seeds", "0,1", "--episodes", "2"]) == 0
    lines = capsys.readouterr().out
    report = json.loads(lines[lines.index("{\n"):])
    ref, same, icem = report["results"]
    assert ref["episodes"] == same["episodes"] == icem["episodes"] == 2 * 2
    # the reference again: the same episodes (seeded by seed, task and episode) exactly
    assert same["mean_return"] == ref["mean_return"]
    assert same["success_rate"] == ref["success_rate"]
    assert all(0.0 <= row["success_rate"] <= 1.0 for row in report["results"])
    assert same["diff_to_reference"] == 0.0 and same["matches_reference"]
    # smoke CEM: 16 samples x 2 iterations + a final draw of 16, horizon 3
    assert ref["evaluations_per_plan"] == 16 * 3 * 3
    assert icem["evaluations_per_plan"] != ref["evaluations_per_plan"]
    assert {"diff_to_reference", "diff_90", "matches_reference"} <= set(icem)


def test_bench_eval_times_both_ways_and_finds_the_same_numbers(tmp_path, capsys):
    cfg = cli.resolve_config("push", "mujoco", "hnet", "smoke", ["num_tasks=2"])
    run_dir = cli.start_run(cfg, str(tmp_path / "run"), quiet=True)
    assert cli.main(["bench", "eval", run_dir, "--repeats", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tasks"] == 2 and report["episodes"] == cfg.eval_episodes
    assert report["same_numbers"] is True
    assert len(report["seconds"]["together"]) == len(report["seconds"]["task_by_task"]) == 1
    assert report["together_over_task_by_task"] > 0
    with pytest.raises(SystemExit) as stop:
        cli.main(["bench", "eval", run_dir, "--repeats", "0"])
    assert stop.value.code == 2
    assert "--repeats: must be 1 or more, got 0" in capsys.readouterr().err


def test_interval_of_paired_differences():
    mean, low, high = budget.interval90([1.0, 2.0, 3.0])
    assert mean == 2.0 and low == pytest.approx(2.0 - 2.920 / 3**0.5)
    assert high == pytest.approx(2.0 + 2.920 / 3**0.5)


@pytest.mark.parametrize("max_norm", [0.1, 1e6])
def test_clip_is_torchs_clip_bit_for_bit(max_norm):
    grads = [torch.randn(s, generator=torch.Generator().manual_seed(i)) for i, s in
             enumerate([(30, 7), (7,), (5, 3)])]
    ours = [g.clone().requires_grad_() for g in grads]
    theirs = [g.clone().requires_grad_() for g in grads]
    for p, g in zip(ours + theirs, grads + grads, strict=True):
        p.grad = g.clone()
    norm = clip_grad_norm(ours, max_norm)
    reference = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert torch.equal(norm, reference)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a.grad, b.grad)


def _hnet_after_steps(compiled: str, monkeypatch) -> list[torch.Tensor]:
    monkeypatch.setenv("HYPERCRL_COMPILE", compiled)
    net = TargetNet(6, 4, hidden=(16, 16))
    cls = strategy_class("hnet")
    strat = cls(net, cls.make_options(hnet_hidden=(8, 8)), torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(20, 6, generator=gen), torch.randn(20, 4, generator=gen))
               for _ in range(8)]
    for t in range(2):
        strat.begin_task(t)
        logs = [strat.train_step(t, x, y) for x, y in batches]
        strat.end_task(t, None, None)
    assert float(logs[0]["dtheta_norm"]) > 0  # measured on a task's first step
    return [p.detach().clone() for p in strat.hnet.parameters()]


def test_compiled_and_eager_lookahead_train_the_same_hypernetwork(monkeypatch):
    eager = _hnet_after_steps("0", monkeypatch)
    compiled = _hnet_after_steps("1", monkeypatch)
    # compiled, task 0's steps also run rank-one (hypercrl.cl.rank_one), which rounds the
    # head's gradient otherwise: within 1 % of one step (lr 1e-4) after 16 steps
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_bad_compile_setting_is_named(monkeypatch):
    monkeypatch.setenv("HYPERCRL_COMPILE", "sometimes")
    with pytest.raises(ValueError, match="HYPERCRL_COMPILE"):
        _hnet_after_steps("sometimes", monkeypatch)


def test_freed_memory_is_kept_on_linux():
    assert keep_freed_memory() is keep_freed_memory()  # idempotent
    if os.environ.get("HYPERCRL_MALLOC") != "default" and os.path.exists("/lib/x86_64-linux-gnu"
                                                                         "/libc.so.6"):
        assert keep_freed_memory()


def test_denormals_flush_to_zero_when_asked(monkeypatch):
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a denormal float32
    torch.set_flush_denormal(False)
    try:
        monkeypatch.setenv("HYPERCRL_DENORMALS", "keep")
        assert flush_denormals() is False
        assert float(tiny * 1.0) != 0.0
        monkeypatch.delenv("HYPERCRL_DENORMALS")
        flushed = flush_denormals()
        if platform.machine() in ("x86_64", "AMD64"):  # SSE3: every x86-64 CPU torch runs on
            assert flushed
        if flushed:
            assert float(tiny * 1.0) == 0.0
    finally:
        torch.set_flush_denormal(False)  # the rest of the suite runs as before


@pytest.mark.parametrize("name,options", [
    ("cem", {"population": 16, "elites": 4, "iterations": 3, "return_mode": "final_best"}),
    ("icem", {"population": 20, "elites": 5, "iterations": 4}),
    ("mppi", {"population": 12, "iterations": 2}),
])
def test_sequences_per_plan_counts_what_the_objective_scores(name, options):
    from hypercrl.plan import PLANNERS, make_optimizer

    opt = make_optimizer(PLANNERS[name](**options), [-1.0, -1.0], [1.0, 1.0], 5,
                         generator=torch.Generator().manual_seed(0))
    scored = []

    def objective(pop):
        scored.append(pop.shape[0])
        return -pop.pow(2).sum(dim=(1, 2))

    for _ in range(2):  # the second plan starts from the first's carried elites (iCEM)
        scored.clear()
        opt.optimize(objective)
        assert sum(scored) == opt.sequences_per_plan()


def test_bench_budget_names_a_task_the_model_has_not_seen(tmp_path, capsys):
    cfg = cli.resolve_config("push", "mujoco", "finetune", "smoke", ["num_tasks=1"])
    run_dir = cli.start_run(cfg, str(tmp_path / "run"), quiet=True)
    assert cli.main(["bench", "budget", run_dir, "--tasks", "0,3", "--episodes", "1"]) == 2
    assert "--tasks [3]: the model saved after task 0 knows tasks 0..0" in capsys.readouterr().err
