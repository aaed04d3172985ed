"""Hypernetworks, the task-embedding store, the output regulariser and the Adam look-ahead."""

import copy

import pytest
import torch

from hypercrl.cl import lookahead
from hypercrl.cl.regularizer import (
    LookaheadWorkspace,
    adam_lookahead,
    adam_shifted,
    output_regularizer,
    regularizer_backward,
)
from hypercrl.hnet import ChunkedHyperNetwork, FullHyperNetwork, TaskEmbeddings, param_shapes
from hypercrl.model import TargetNet


def _target() -> TargetNet:
    return TargetNet(6, 4, hidden=(16, 8))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "make",
    [
        lambda s: FullHyperNetwork(s, emb_dim=5, hidden=(7, 9), generator=_gen()),
        lambda s: FullHyperNetwork(s, emb_dim=5, init="hyperfan_in", generator=_gen()),
        lambda s: ChunkedHyperNetwork(s, emb_dim=5, chunk_dim=50, chunk_emb_dim=3, hidden=(8,),
                                      generator=_gen()),
    ],
)
def test_hypernetworks_emit_exactly_the_target_shapes(make):
    net = _target()
    hnet = make(param_shapes(net))
    out = hnet(torch.randn(3, 5))
    assert list(out) == [n for n, _ in net.named_parameters()]
    for name, p in net.named_parameters():
        assert out[name].shape == (3, *p.shape)


def test_chunked_cuts_the_last_chunk_and_runs_all_chunks_in_one_forward():
    shapes = param_shapes(_target())
    hnet = ChunkedHyperNetwork(shapes, emb_dim=5, chunk_dim=64, chunk_emb_dim=3, generator=_gen())
    total = sum(p.numel() for p in _target().parameters())
    assert total % 64 != 0 and hnet.num_chunks == -(-total // 64)
    calls = []
    hnet.head.register_forward_hook(lambda m, i, o: calls.append(o.shape))
    flat = hnet(torch.randn(4, 5), flat=True)
    assert flat.shape == (4, total)
    assert calls == [torch.Size([4 * hnet.num_chunks, 64])]


def test_hnet_rows_are_independent_per_task():
    hnet = FullHyperNetwork(param_shapes(_target()), emb_dim=5, generator=_gen())
    emb = torch.randn(3, 5)
    batched = hnet(emb, flat=True)
    for t in range(3):
        torch.testing.assert_close(batched[t], hnet(emb[t : t + 1], flat=True)[0])


def test_hyperfan_in_gives_fan_in_scaled_target_weights():
    net = TargetNet(64, 32, hidden=(128,))
    shapes = param_shapes(net)
    hnet = FullHyperNetwork(shapes, emb_dim=10, hidden=(64, 64), init="hyperfan_in",
                            generator=_gen(1))
    w = hnet(torch.randn(256, 10, generator=_gen(2)))
    for name, shape in shapes.items():
        if len(shape) == 2:
            expected = 1.0 / (2 * shape[1])
            assert w[name].var().item() == pytest.approx(expected, rel=0.35), name
    xavier = FullHyperNetwork(shapes, emb_dim=10, hidden=(64, 64), generator=_gen(1))
    wx = xavier(torch.randn(256, 10, generator=_gen(2)))
    # xavier heads ignore the target layer's fan-in: layer 0 (fan-in 64) and 1 (fan-in 128)
    # come out with variances that do not halve
    ratio_h = w["layers.0.weight"].var() / w["layers.1.weight"].var()
    ratio_x = wx["layers.0.weight"].var() / wx["layers.1.weight"].var()
    assert ratio_h.item() == pytest.approx(2.0, rel=0.3)
    assert abs(ratio_x.item() - 2.0) > 0.5


def test_embedding_store_freezes_and_optionally_stays_plastic():
    store = TaskEmbeddings(4)
    assert store.add(_gen()) == 0 and store.add(_gen(1)) == 1
    store.freeze(0)
    assert not store.embeddings[0].requires_grad and store.embeddings[1].requires_grad
    assert store([0, 1]).shape == (2, 4)
    plastic = TaskEmbeddings(4, plastic_previous=True)
    plastic.add(_gen())
    plastic.freeze(0)
    assert plastic.is_frozen(0) and plastic.embeddings[0].requires_grad
    with pytest.raises(ValueError, match="task 5"):
        store([5])


def _hnet_and_targets(tasks: int = 4):
    hnet = FullHyperNetwork(param_shapes(_target()), emb_dim=5, hidden=(12,), generator=_gen())
    emb = torch.randn(tasks, 5, generator=_gen(3))
    with torch.no_grad():
        targets = hnet(emb, flat=True).clone()
    return hnet, emb, targets


def test_regulariser_is_zero_at_its_targets():
    hnet, emb, targets = _hnet_and_targets()
    assert output_regularizer(hnet, emb, targets).item() == 0.0


def test_batched_regulariser_equals_per_task_loop_with_lookahead():
    hnet, emb, targets = _hnet_and_targets()
    with torch.no_grad():
        for p in hnet.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=_gen(4)))
    delta = {p: 1e-3 * torch.randn(p.shape, generator=_gen(5)) for p in hnet.parameters()}
    batched = output_regularizer(hnet, emb, targets, delta)
    shifted = copy.deepcopy(hnet)
    with torch.no_grad():
        for p, q in zip(hnet.parameters(), shifted.parameters(), strict=True):
            q.add_(delta[p])
    loop = sum(
        (shifted(emb[j : j + 1], flat=True)[0] - targets[j]).pow(2).sum() for j in range(4)
    ) / 4
    torch.testing.assert_close(batched, loop)
    assert batched.item() > 0


@pytest.mark.parametrize("warm_steps", [0, 3])
def test_lookahead_equals_a_real_adam_step(warm_steps):
    hnet, emb, _ = _hnet_and_targets()
    hnet, emb = hnet.double(), emb.double()  # float64, so that p_after - p_before is exact
    opt = torch.optim.Adam(hnet.parameters(), lr=1e-3)

    def grads(seed):
        opt.zero_grad()
        out = hnet(emb, flat=True)
        (out * torch.randn(out.shape, generator=_gen(seed), dtype=out.dtype)).sum().backward()

    for i in range(warm_steps):
        grads(10 + i)
        opt.step()
    grads(99)
    delta = adam_lookahead(opt)
    before = [p.detach().clone() for p in hnet.parameters()]
    state_before = copy.deepcopy(opt.state_dict())
    opt.step()
    for p, b in zip(hnet.parameters(), before, strict=True):
        torch.testing.assert_close(delta[p], p.detach() - b, rtol=1e-9, atol=1e-12)
    # the look-ahead did not touch the optimiser's state
    steps = [float(st["step"]) for st in state_before["state"].values()]
    assert steps == [warm_steps] * len(before) if warm_steps else steps == []
    assert len(delta) == len(before)


def _warm_optimizer(hnet, steps=2):
    """An Adam on ``hnet`` with moments from ``steps`` steps and a fresh task-like gradient."""
    opt = torch.optim.Adam(hnet.parameters(), lr=1e-3)
    for i in range(steps + 1):
        opt.zero_grad()
        out = hnet(torch.randn(1, 5, generator=_gen(40 + i)), flat=True)
        (out * torch.randn(out.shape, generator=_gen(50 + i))).sum().backward()
        if i < steps:
            opt.step()
    return opt


def test_regulariser_backward_on_shifted_stand_ins_equals_the_functional_one():
    """The regulariser run on theta + dtheta buffers: the value and the gradients of the
    functional form, accumulated into the parameters' own .grad tensors, theta untouched."""
    hnet, emb, targets = _hnet_and_targets()
    with torch.no_grad():
        for p in hnet.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=_gen(4)))
    opt = _warm_optimizer(hnet)
    workspace = LookaheadWorkspace()
    delta = adam_lookahead(opt, workspace)
    reference_delta = adam_lookahead(opt)
    for p in hnet.parameters():
        torch.testing.assert_close(delta[p], reference_delta[p], rtol=0, atol=0)
    before = [p.detach().clone() for p in hnet.parameters()]
    grad_objects = [p.grad for p in hnet.parameters()]
    task_grads = [p.grad.clone() for p in hnet.parameters()]
    shifted = {p: p.detach() + reference_delta[p] for p in hnet.parameters()}
    value = regularizer_backward(hnet, emb, targets, shifted, 0.5)
    fast = [p.grad.clone() for p in hnet.parameters()]
    for p, b, g in zip(hnet.parameters(), before, grad_objects, strict=True):
        assert torch.equal(p.detach(), b)  # theta itself never moved
        assert p.grad is g  # accumulated in place, into the parameter's own gradient
        p.grad = None
    reference = output_regularizer(hnet, emb, targets, reference_delta)
    (0.5 * reference).backward()
    torch.testing.assert_close(value, reference.detach())
    for p, g_task, g_fast in zip(hnet.parameters(), task_grads, fast, strict=True):
        torch.testing.assert_close(g_fast, g_task + p.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("compiled", ["0", "1", "failed"])
def test_shifted_parameters_equal_theta_plus_the_lookahead(compiled, monkeypatch):
    """adam_shifted (the eager kernels, the torch.compile-fused one, and the eager ones again
    where compiling fails) writes theta + dtheta and ||dtheta||^2 (None unless measured) as
    adam_lookahead gives them, and leaves theta and the optimiser's state alone."""
    monkeypatch.setenv("HYPERCRL_COMPILE", "0" if compiled == "0" else "1")
    if compiled == "failed":

        def broken(*args):
            raise RuntimeError("no compiler here")

        monkeypatch.setitem(lookahead._compiled, "kernel", broken)
    hnet, _, _ = _hnet_and_targets()
    opt = _warm_optimizer(hnet)
    params = list(hnet.parameters())
    delta = adam_lookahead(opt)
    before = [p.detach().clone() for p in params]
    state = copy.deepcopy(opt.state_dict())
    shifted, sq = adam_shifted(opt, params, LookaheadWorkspace())
    for p, b, s in zip(params, before, shifted, strict=True):
        torch.testing.assert_close(s, b + delta[p], rtol=1e-6, atol=1e-9)
        assert torch.equal(p.detach(), b)
    if compiled == "1":  # the fused kernel really ran (no fallback to the eager one)
        assert lookahead._compiled.get("kernel") is not None
    if compiled == "failed":  # and is not tried again
        assert lookahead._compiled["kernel"] is None
    expected = sum(float(d.pow(2).sum()) for d in delta.values())
    assert float(sq) == pytest.approx(expected, rel=1e-5)
    again, unmeasured = adam_shifted(opt, params, LookaheadWorkspace(), measure=False)
    assert unmeasured is None
    for s, a in zip(shifted, again, strict=True):
        torch.testing.assert_close(a, s)
    after = opt.state_dict()["state"]
    for k, st in state["state"].items():
        for name, value in st.items():
            assert torch.equal(after[k][name], value)


def test_regulariser_at_shifted_embeddings_in_place_and_functional_agree():
    """With emb_delta, both forms evaluate h(e_j + de_j; theta + dtheta), and the gradient on
    the embeddings is taken there."""
    hnet, emb, targets = _hnet_and_targets()
    delta = {p: 1e-2 * torch.randn(p.shape, generator=_gen(5)) for p in hnet.parameters()}
    emb_delta = 0.1 * torch.randn(emb.shape, generator=_gen(6))
    leaf = emb.clone().requires_grad_()
    shifted = {p: p.detach() + delta[p] for p in hnet.parameters()}
    value = regularizer_backward(hnet, leaf, targets, shifted, 2.0, emb_delta)
    fast = [p.grad.clone() for p in hnet.parameters()] + [leaf.grad.clone()]
    for p in hnet.parameters():
        p.grad = None
    leaf.grad = None
    reference = output_regularizer(hnet, leaf, targets, delta, emb_delta)
    (2.0 * reference).backward()
    torch.testing.assert_close(value, reference.detach())
    for g_fast, p in zip(fast, [*hnet.parameters(), leaf], strict=True):
        torch.testing.assert_close(g_fast, p.grad, rtol=1e-5, atol=1e-6)
    # by hand: a shifted copy of the hypernetwork on the shifted embeddings
    shifted = copy.deepcopy(hnet)
    with torch.no_grad():
        for p, q in zip(hnet.parameters(), shifted.parameters(), strict=True):
            q.add_(delta[p])
    e = emb.clone().requires_grad_()
    by_hand = sum((shifted((e + emb_delta)[j : j + 1], flat=True)[0] - targets[j]).pow(2).sum()
                  for j in range(4)) / 4
    torch.testing.assert_close(reference, by_hand)
    torch.testing.assert_close(fast[-1], torch.autograd.grad(2.0 * by_hand, e)[0],
                               rtol=1e-5, atol=1e-6)
    unshifted = output_regularizer(hnet, emb, targets, delta).detach()
    assert abs(value.item() - unshifted.item()) > 1e-3 * value.item()  # the shift matters
