"""The rank-one Adam step of the hypernetwork's head (hypercrl.cl.rank_one) equals the step
with the gradient written out, and steps aside where it does not apply."""

from __future__ import annotations

import logging

import pytest
import torch

from hypercrl.cl import rank_one, strategy_class
from hypercrl.cl.rank_one import HeadRecorder
from hypercrl.model import TargetNet


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_recorded_factors_are_autograds_gradients():
    """The head records (g, f) whose product is the weight gradient autograd writes; the
    features' and the bias's gradients are autograd's."""
    feats = torch.randn(3, 7, generator=_gen(0))
    weight = torch.randn(11, 7, generator=_gen(1), requires_grad=True)
    bias = torch.randn(11, generator=_gen(2), requires_grad=True)
    upstream = torch.randn(3, 11, generator=_gen(3))
    leaf = feats.clone().requires_grad_()
    (torch.nn.functional.linear(leaf, weight, bias) * upstream).sum().backward()
    recorder = HeadRecorder()
    ours = feats.clone().requires_grad_()
    bias2 = bias.detach().clone().requires_grad_()
    (recorder.linear(ours, weight.detach(), bias2) * upstream).sum().backward()
    assert recorder.recorded and recorder.rank_one() is None  # three rows
    torch.testing.assert_close(recorder.gradient(), weight.grad)
    torch.testing.assert_close(ours.grad, leaf.grad)
    torch.testing.assert_close(bias2.grad, bias.grad)
    one = HeadRecorder()
    row = feats[:1].clone().requires_grad_()
    (one.linear(row, weight.detach(), None) * upstream[:1]).sum().backward()
    g, f = one.rank_one()
    torch.testing.assert_close(torch.outer(g, f), upstream[:1].t() @ feats[:1])


def _trained(method: str, compile_mode: str, monkeypatch, steps: int = 6, reg_every: int = 2,
             logs: list | None = None, **options):
    """A strategy after ``steps`` steps of task 0 and as many of task 1 (the regulariser on
    every ``reg_every``-th step of task 1; by default every other), with the head's Adam
    state; ``logs``, if given, receives task 1's step logs."""
    monkeypatch.setenv("HYPERCRL_COMPILE", compile_mode)
    cls = strategy_class(method)
    net = TargetNet(6, 4, hidden=(16, 16))
    strat = cls(net, cls.make_options(hnet_hidden=(8, 8), reg_every=reg_every, **options),
                _gen(0))
    gen = _gen(1)
    batches = [(torch.randn(20, 6, generator=gen), torch.randn(20, 4, generator=gen))
               for _ in range(steps)]
    for t in range(2):
        strat.begin_task(t)
        task_logs = [strat.train_step(t, x, y) for x, y in batches]
        strat.end_task(t, None, None)
    if logs is not None:
        logs.extend(task_logs)
    return strat


def _count(monkeypatch, name: str = "adam_step_") -> list[int]:
    """Counts the calls of ``rank_one.<name>`` that did their work."""
    calls = [0]
    fn = getattr(rank_one, name)

    def counting(*args, **kwargs):
        done = fn(*args, **kwargs)
        calls[0] += done is not None and done is not False
        return done

    monkeypatch.setattr(rank_one, name, counting)
    return calls


@pytest.mark.parametrize("clip", [5.0, 1e-3, None])
@pytest.mark.parametrize("method", ["hnet", "mip_hnet"])
def test_rank_one_steps_train_as_written_out_gradients_do(method, clip, monkeypatch):
    """Compiled (the head's gradient kept as factors: rank one where no regulariser runs, a
    row per earlier task more where it does) and eager (gradient written out): the same
    hypernetwork and the same Adam moments, to float32 rounding; with a clip that binds
    (1e-3), one that does not (5) and none."""
    eager = _trained(method, "0", monkeypatch, clip=clip)
    calls = _count(monkeypatch)
    shifts = _count(monkeypatch, "shifted")
    fast = _trained(method, "1", monkeypatch, clip=clip)
    # task 0: every step but the first (the optimisers, new at a task's start, hold no
    # moments yet); task 1: its 3 unregularised steps (1, 3, 5) rank-one, and its
    # regularised steps but the first (2, 4) with the look-ahead formed from the factors
    assert calls[0] == 5 + 3
    assert shifts[0] == 2
    for a, b in zip(eager.hnet.parameters(), fast.hnet.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    ours, theirs = fast.theta_opt.state_dict(), eager.theta_opt.state_dict()
    for key, state in theirs["state"].items():
        assert float(ours["state"][key]["step"]) == float(state["step"])
        for name in ("exp_avg", "exp_avg_sq"):  # to 1e-5 of the largest moment
            scale = float(state[name].abs().max())
            torch.testing.assert_close(ours["state"][key][name], state[name],
                                       rtol=1e-4, atol=1e-5 * scale)


def test_ensembles_and_interval_write_the_gradient_out(monkeypatch):
    """More than one row (an ensemble's members) or a head used outside the recorded path
    (interval bounds): no rank-one step, and training equals the eager one's."""
    calls = _count(monkeypatch)
    shifts = _count(monkeypatch, "shifted")
    for method, options in (("hnet", {"ensemble": 2}), ("interval_hnet", {"warmup": 2})):
        fast = _trained(method, "1", monkeypatch, **options)
        eager = _trained(method, "0", monkeypatch, **options)
        for a, b in zip(eager.hnet.parameters(), fast.hnet.parameters(), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    assert calls[0] == 0 and shifts[0] == 0


@pytest.mark.parametrize("kernel,what", [(rank_one.KERNEL, "rank-one Adam step"),
                                         (rank_one.SHIFT_KERNEL, "rank-one look-ahead")])
def test_a_failed_compile_falls_back_to_the_written_out_gradient(kernel, what, monkeypatch,
                                                                 caplog):
    """Where a compiled kernel fails (the Adam step's, the look-ahead's), the step writes the
    gradient out (the same result), says so once, and later steps do not try again."""
    eager = _trained("hnet", "0", monkeypatch)

    def broken(*args):
        raise RuntimeError("no compiler here")

    monkeypatch.setitem(rank_one._compiled, kernel, broken)
    with caplog.at_level(logging.WARNING, logger="hypercrl"):
        fast = _trained("hnet", "1", monkeypatch)
    assert rank_one._compiled[kernel] is None
    assert sum(f"{what} failed" in r.message for r in caplog.records) == 1
    for a, b in zip(eager.hnet.parameters(), fast.hnet.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reg_every", [1, 4])
def test_the_lookahead_length_is_logged_on_every_tenth_regularised_step_and_is_the_same_either_way(
        reg_every, monkeypatch):
    """``dtheta_norm`` (a logged statistic, not part of the method) is measured on every
    MOVED_EVERY-th regularised step of a task, the first included, and only there; from the
    head's factors (compiled) it is the written-out look-ahead's length (eager)."""
    from hypercrl.cl.hnet import MOVED_EVERY

    moves = _count(monkeypatch, "moved")
    every = MOVED_EVERY * reg_every
    logs = {"0": [], "1": []}
    for mode, task_logs in logs.items():
        _trained("hnet", mode, monkeypatch, steps=2 * every + 1, reg_every=reg_every,
                 logs=task_logs)
    for mode, steps in logs.items():
        measured = [i for i, step in enumerate(steps) if "dtheta_norm" in step]
        assert measured == [0, every, 2 * every], mode
        regularised = [i for i, step in enumerate(steps) if "reg" in step]
        assert regularised == list(range(0, 2 * every + 1, reg_every)), mode
    # task 1's first step steps its fresh optimiser as usual; the two later measured steps
    # sum the head's shift from its factors
    assert moves[0] == 2
    for i in (0, every, 2 * every):
        torch.testing.assert_close(logs["1"][i]["dtheta_norm"], logs["0"][i]["dtheta_norm"],
                                   rtol=1e-3, atol=0)


def test_a_failed_compile_of_the_length_sums_it_eagerly(monkeypatch, caplog):
    out, param = torch.randn(30, 4, generator=_gen(0)), torch.randn(30, 4, generator=_gen(1))

    def broken(*args):
        raise RuntimeError("no compiler here")

    monkeypatch.setitem(rank_one._compiled, rank_one.MOVED_KERNEL, broken)
    with caplog.at_level(logging.WARNING, logger="hypercrl"):
        first, second = rank_one.moved(out, param), rank_one.moved(out, param)
    assert rank_one._compiled[rank_one.MOVED_KERNEL] is None
    assert sum("look-ahead's length failed" in r.message for r in caplog.records) == 1
    torch.testing.assert_close(first, (out - param).pow(2).sum())
    torch.testing.assert_close(second, first)
