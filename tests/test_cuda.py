"""The CUDA paths, against the CPU: they run only where torch sees a GPU (skipped elsewhere).

docs/BENCHMARKS.md ("CUDA") records where and when they last ran; `launch/gpu_check.sh` runs
them with the GPU benches in one go.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from test_loop_smoke import TINY, TINY_PLANNER
from test_plan_agent import GOAL, point_mass

from hypercrl import ContinualDynamics, cli
from hypercrl.cl import METHODS
from hypercrl.config import from_sequence
from hypercrl.plan import CEM, CEMConfig, MPCAgent

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def reach_reward(state, action, next_state):
    """Closeness of the next position to GOAL (moved to the states' device), less effort."""
    goal = GOAL.to(next_state.device)
    return -(next_state[:, :2] - goal).norm(dim=1) - 0.01 * action.pow(2).sum(1)


def _data(seed: int, n: int = 400):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(n, 4, generator=g)
    actions = torch.rand(n, 2, generator=g) * 2 - 1
    return states, actions, point_mass(states, actions)


def _trained(method: str, device: str, tasks: int = 2, steps: int = 30) -> ContinualDynamics:
    cd = ContinualDynamics(4, 2, method, seed=0, hidden=(32, 32), device=device)
    for t in range(tasks):
        cd.begin_task()
        cd.fit(*_data(t), steps=steps)
        cd.end_task()
    return cd


@pytest.mark.parametrize("method", ["hnet", "chunked_hnet", "finetune", "coreset", "ewc"])
def test_training_on_cuda_matches_the_cpu(method, monkeypatch):
    """Two tasks trained on each device from the same seed (the same initial weights and
    minibatches, drawn by CPU generators) predict alike: the CUDA path computes the same
    method, regulariser and look-ahead included, up to float32 rounding through Adam."""
    monkeypatch.setenv("HYPERCRL_COMPILE", "0")
    cpu, gpu = _trained(method, "cpu"), _trained(method, "cuda")
    states, actions, _ = _data(9, 200)
    for task in range(2):
        ref = cpu.predict(states, actions, task)
        out = gpu.predict(states, actions, task)
        assert out.device.type == "cpu"  # predict answers on the caller's device
        torch.testing.assert_close(out, ref, rtol=1e-2, atol=2e-3)


def test_the_fused_lookahead_trains_on_cuda_as_the_eager_one(monkeypatch):
    """HYPERCRL_COMPILE=1: the torch.compile-fused look-ahead and the head's steps from its
    gradient's factors (Triton kernels on CUDA: the rank-one Adam step on task 0, the
    look-ahead from the factors on task 1) train the same hypernetwork as the eager
    kernels."""
    monkeypatch.setenv("HYPERCRL_COMPILE", "0")
    eager = _trained("hnet", "cuda")
    monkeypatch.setenv("HYPERCRL_COMPILE", "1")
    fused = _trained("hnet", "cuda")
    for a, b in zip(eager.strategy.hnet.parameters(), fused.strategy.hnet.parameters(),
                    strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def _agent(source: ContinualDynamics, compile_: bool) -> MPCAgent:
    gen = torch.Generator(device="cuda").manual_seed(0)
    config = CEMConfig(population=64, elites=8, iterations=3, return_mode="final_best")
    opt = CEM([-1.0, -1.0], [1.0, 1.0], 5, config, device="cuda", generator=gen)
    return MPCAgent(source, reach_reward, opt, task=0, compile=compile_)


def test_the_compiled_planner_on_cuda_acts_as_the_eager_one():
    """compile=True (torch.compile, CUDA graphs): the same actions as eager planning for the
    same generator state, over several steps (graph replays, warm starts) and after the
    model is trained again and the agent refreshed (new weights, same shapes)."""
    source = ContinualDynamics(4, 2, "hnet", seed=0, hidden=(32, 32), device="cuda")
    source.begin_task()
    source.fit(*_data(0), steps=30)
    eager, compiled = _agent(source, False), _agent(source, True)
    state = torch.tensor([0.1, 0.2, -0.3, 0.4], device="cuda")
    for _ in range(3):
        a, b = compiled.act(state), eager.act(state)
        assert a.device.type == "cuda"
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        state = point_mass(state[None], a[None])[0]
    source.fit(*_data(5), steps=10)
    compiled.refresh()
    eager.refresh()
    for _ in range(2):
        torch.testing.assert_close(compiled.act(state), eager.act(state), rtol=1e-4, atol=1e-5)


# one tiny run of every method (test_loop_smoke's settings); hnet also with an ensemble of 2,
# with evaluation that infers the task, and with the planner compiled (CUDA graphs), as the
# README advises on a GPU: collecting plans one at a time, the batched evaluation with the
# populations of two episodes side by side
EXTRAS = {"ensemble": {"ensemble": 2}, "task_free": {"task_free_eval": True},
          "compile": {"compile": True, "eval_episodes": 2}}


@pytest.mark.parametrize("method", [*sorted(METHODS), *(f"hnet+{e}" for e in EXTRAS)])
def test_every_method_runs_a_push_sequence_on_cuda(method, tmp_path, capsys):
    """`hypercrl run` with device=cuda, then `hypercrl eval` of its saved model."""
    method, _, extra = method.partition("+")
    settings = {**TINY, **TINY_PLANNER, **EXTRAS.get(extra, {})}
    cfg = from_sequence(cli._sequence("push", "mujoco"), "smoke", method, device="cuda",
                        **settings)
    run_dir = cli.start_run(cfg, str(tmp_path / method), quiet=True)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert all(np.isfinite(r).all() for r in metrics["returns"]["1"])
    capsys.readouterr()
    assert cli.main(["eval", run_dir, "--after", "1", "--episodes", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all(np.isfinite(t["returns"]).all() for t in out["tasks"].values())
