"""launch/refit.py: refit one task's model from the transitions a run kept."""

import json

import numpy as np
import pytest
import torch

from hypercrl.api import ContinualDynamics
from tests.launchtools import launch_module

refit = launch_module("refit")


@pytest.mark.parametrize("absolute_inputs", [False, True])
def test_kept_transitions_are_the_ones_the_task_was_fitted_on(absolute_inputs):
    # angles and quaternions in the state: the kept data is stored as standardised features
    kinds = ["angle", "delta", "quat", "quat", "quat", "quat", "absolute"]
    g = torch.Generator().manual_seed(0)
    s = torch.randn(40, 7, generator=g)
    s[:, 0] = torch.rand(40, generator=g) * 6.0 - 3.0
    s[:, 2:6] /= s[:, 2:6].norm(dim=1, keepdim=True)
    s2 = s + 0.1 * torch.randn(40, 7, generator=g)
    s2[:, 2:6] /= s2[:, 2:6].norm(dim=1, keepdim=True)
    a = torch.randn(40, 2, generator=g)
    dyn = ContinualDynamics(7, 2, "multitask", state_spec=kinds, hidden=(8,),
                            absolute_inputs=absolute_inputs)
    for task in range(2):
        dyn.begin_task()
        dyn.fit(s + task, a, s2 + task, steps=1)
        dyn.end_task()
    checkpoint = {"progress": {"task": 2}, "learner": {"buffer": None,
                                                       "dynamics": dyn.state_dict()}}
    ks, ka, ks2 = refit.kept_transitions(checkpoint, 1)
    np.testing.assert_allclose(ka, a.numpy(), atol=1e-5)
    expect_s, expect_s2 = (s + 1).numpy(), (s2 + 1).numpy()
    np.testing.assert_allclose(np.cos(ks[:, 0]), np.cos(expect_s[:, 0]), atol=1e-5)
    np.testing.assert_allclose(ks[:, 1:6], expect_s[:, 1:6], atol=1e-5)
    # the absolute dim is kept only where it was an input; else it comes back 0
    np.testing.assert_allclose(ks[:, 6], expect_s[:, 6] if absolute_inputs else 0, atol=1e-5)
    # s' comes back through the model's own targets: a quaternion up to its sign
    np.testing.assert_allclose(ks2[:, [1, 6]], expect_s2[:, [1, 6]], atol=1e-5)
    dot = np.abs((ks2[:, 2:6] * expect_s2[:, 2:6] / np.linalg.norm(expect_s2[:, 2:6], axis=1,
                                                                   keepdims=True)).sum(1))
    np.testing.assert_allclose(dot, 1.0, atol=1e-5)
    # the task a run was learning when its checkpoint was written: its buffer
    from hypercrl.data import TransitionBuffer

    buffer = TransitionBuffer(7, 2, 8)
    for row in zip(s[:5].numpy(), a[:5].numpy(), s2[:5].numpy(), strict=True):
        buffer.add(*row)
    current = {"progress": {"task": 2}, "learner": {"buffer": buffer.state_dict(),
                                                    "dynamics": dyn.state_dict()}}
    np.testing.assert_array_equal(refit.kept_transitions(current, 2)[2], s2[:5].numpy())
    with pytest.raises(SystemExit, match="no training transitions of task 2; it keeps those "
                       r"of tasks \[0, 1\]"):
        refit.kept_transitions(checkpoint, 2)


def test_refit_of_a_multitask_runs_task_with_another_method(tmp_path, capsys):
    from hypercrl import cli
    from hypercrl.config import from_sequence

    cfg = from_sequence(cli._sequence("push", "mujoco"), "smoke", "multitask", num_tasks=2,
                        init_random_steps=12, mpc_steps=8, retrain_every=4, train_iters=2,
                        episode_steps=6, eval_episodes=1, horizon=3, heldout_size=8,
                        population=8, elites=2, iterations=1)
    run_dir = cli.start_run(cfg, str(tmp_path / "run"), quiet=True)
    capsys.readouterr()
    assert refit.main([run_dir, "--task", "0", "--method", "single", "--set", "lr=0.01",
                       "--episodes", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "single" and out["options"]["lr"] == 0.01
    assert out["fits"] == 2 and out["gradient_steps"] == 4 and out["rows"] > 0
    assert len(out["returns"]) == 2 and np.isfinite(out["heldout_one_step"])
    # the run's own model is compared: its task-0 numbers from metrics.json
    metrics = json.load(open(f"{run_dir}/metrics.json"))
    assert out["run_return"] == round(float(np.mean(metrics["returns"]["0"][0])), 2)
    # by default the run's own method; --episodes 0 scores the held-out data only
    assert refit.main([run_dir, "--task", "1", "--episodes", "0"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["method"] == "multitask" and "returns" not in again
    with pytest.raises(SystemExit):
        refit.main([run_dir, "--task", "0", "--method", "sb3-sac"])
    assert "not a model-based method" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        refit.main([run_dir, "--task", "2"])
    assert "--task 2: the run has tasks 0..1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        refit.main([str(tmp_path / "nothing"), "--task", "0"])
    assert "no config.json" in capsys.readouterr().err
