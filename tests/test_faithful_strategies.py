"""Every strategy trains on the original's objective (reference §3, §6), checked by hand.

The HyperCRL step is re-implemented here with plain torch (a copy of the hypernetwork, plain
``torch.optim.Adam``, the look-ahead taken from a real Adam step on a copy of the optimiser)
and compared parameter by parameter with ``HnetStrategy.train_step``.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from hypercrl.cl import METHODS
from hypercrl.cl.hnet import ChunkedHnetOptions, ChunkedHnetStrategy, HnetOptions, HnetStrategy
from hypercrl.cl.module import FinetuneStrategy, ModuleOptions, ModuleStrategy
from hypercrl.cl.penalty import EWCOptions, EWCStrategy
from hypercrl.cl.replay import (
    CoresetOptions,
    CoresetStrategy,
    MultitaskStrategy,
    ReplayOptions,
)
from hypercrl.model import TargetNet

IN, OUT, B = 5, 3, 100


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(seed: int, n: int = B) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised inputs [n, IN] and RAW deltas [n, OUT] (normalize_targets False)."""
    g = _gen(seed)
    x = torch.randn(n, IN, generator=g)
    y = 0.5 * torch.randn(n, OUT, generator=g) + torch.tensor([1.0, -0.3, 0.2])
    return x, y


# --- the original's objective, by hand ------------------------------------------------------
def _mlp(w: list[torch.Tensor], x: torch.Tensor, probabilistic: bool):
    """The target MLP on weights [W1, b1, ..., Wout, bout]: ReLU, linear output, and the
    soft-bounded log-variance (max 0.5, min -10) of a probabilistic head."""
    h = x
    for i in range(0, len(w) - 2, 2):
        h = torch.relu(h @ w[i].T + w[i + 1])
    out = h @ w[-2].T + w[-1]
    if not probabilistic:
        return out, None
    mu, raw = out[:, :OUT], out[:, OUT:]
    lv = 0.5 - F.softplus(0.5 - raw)
    return mu, -10.0 + F.softplus(lv + 10.0)


def _summed_loss(mu, lv, y):
    """sum_b sum_d (mu - y)^2 / D, or sum_b sum_d [(mu - y)^2 exp(-lv) + lv] / D."""
    per = (mu - y) ** 2 if lv is None else (mu - y) ** 2 * torch.exp(-lv) + lv
    return per.sum() / y.shape[1]


def _real_adam_change(opt: torch.optim.Adam, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """What ``opt.step()`` would change with the current grads (None counts as zero), from a
    real step of a fresh Adam that loaded a copy of ``opt``'s state."""
    shadow = [p.detach().clone().requires_grad_() for p in params]
    for s, p in zip(shadow, params, strict=True):
        s.grad = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
    twin = torch.optim.Adam(shadow, lr=opt.param_groups[0]["lr"])
    twin.load_state_dict(copy.deepcopy(opt.state_dict()))
    twin.step()
    return [s.detach() - p.detach() for s, p in zip(shadow, params, strict=True)]


class OriginalHnetStep:
    """HyperCRL's training step as the original runs it (reference §3.3), in plain torch.

    ``objective="sum"`` is the original's. Two near misses show that the comparison can tell
    them apart: ``"mean"`` (task loss / B, beta * L_reg: what hypercrl used to do) and
    ``"sum_without_b"`` (summed task loss, beta * L_reg).
    """

    def __init__(self, strategy: HnetStrategy, task: int, objective: str = "sum"):
        o = strategy.opts
        self.h = copy.deepcopy(strategy.hnet)
        self.theta = list(self.h.parameters())
        self.embs = [e.detach().clone().requires_grad_() for e in strategy.embeddings.embeddings]
        self.targets = strategy.reg_targets.clone()
        self.task, self.beta, self.clip, self.objective = task, o.beta, o.clip, objective
        self.plastic = self.embs[:task] if o.plastic_previous else []
        self.theta_opt = torch.optim.Adam(self.theta + self.plastic, lr=o.lr)
        self.emb_opt = torch.optim.Adam([self.embs[task]], lr=o.lr)
        self.probabilistic = strategy.net.probabilistic
        self.clip_norms: list[tuple[float, float]] = []  # (embedding, theta), before clipping

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        t, n = self.task, x.shape[0]
        self.theta_opt.zero_grad()
        self.emb_opt.zero_grad()
        w = [v[0] for v in self.h(self.embs[t][None]).values()]
        loss = _summed_loss(*_mlp(w, x, self.probabilistic), y)
        if self.objective == "mean":
            loss = loss / n
        loss.backward()
        emb_norm = torch.nn.utils.clip_grad_norm_([self.embs[t]], self.clip)
        self.emb_opt.step()
        params = self.theta + self.plastic
        change = _real_adam_change(self.theta_opt, params)
        dtheta = dict(zip(self.theta, change[: len(self.theta)], strict=True))
        shifted = {k: p + dtheta[p] for k, p in self.h.named_parameters()}
        earlier = torch.stack(self.embs[:t])
        if self.plastic:
            earlier = earlier + torch.stack(change[len(self.theta):])
        out = functional_call(self.h, shifted, (earlier,), {"flat": True})
        reg = (self.targets - out).pow(2).sum() / t  # (1/t) sum_j ||W*_j - h(...)||^2
        scale = self.beta * n if self.objective == "sum" else self.beta
        (scale * reg).backward()
        theta_norm = torch.nn.utils.clip_grad_norm_(params, self.clip)
        self.theta_opt.step()
        self.clip_norms.append((float(emb_norm), float(theta_norm)))


def _strategy_at_task_one(kind: str, probabilistic: bool, **options) -> HnetStrategy:
    """A strategy trained a little on task 0 (so that theta and e_0 are not at init), with
    task 1 begun: targets W*_0 taken, a new embedding, fresh optimisers."""
    net = TargetNet(IN, OUT, hidden=(16, 16), probabilistic=probabilistic)
    if kind == "hnet":
        opts = HnetOptions(lr=1e-3, emb_dim=4, hnet_hidden=(8,), **options)
        strategy = HnetStrategy(net, opts, _gen(0))
    else:
        opts = ChunkedHnetOptions(lr=1e-3, emb_dim=4, chunk_dim=97, chunk_emb_dim=3,
                                  hnet_hidden=(8, 6), **options)
        strategy = ChunkedHnetStrategy(net, opts, _gen(0))
    strategy.begin_task(0)
    for i in range(3):
        strategy.train_step(0, *_batch(100 + i))
    strategy.end_task(0, *_batch(99))
    strategy.begin_task(1)
    return strategy


def _assert_same_parameters(strategy: HnetStrategy, ref: OriginalHnetStep, atol: float):
    for p, q in zip(strategy.hnet.parameters(), ref.theta, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=atol)
    for e, f in zip(strategy.embeddings.embeddings, ref.embs, strict=True):
        torch.testing.assert_close(e.detach(), f.detach(), rtol=0, atol=atol)


def _max_gap(a: OriginalHnetStep, b: OriginalHnetStep) -> float:
    pairs = zip(a.theta + a.embs, b.theta + b.embs, strict=True)
    return max(float((p - q).detach().abs().max()) for p, q in pairs)


@pytest.mark.parametrize(
    ("kind", "probabilistic", "plastic"),
    [("hnet", False, False), ("hnet", True, False), ("hnet", True, True),
     ("chunked_hnet", False, True)],
)
def test_hnet_step_equals_the_originals_summed_objective(kind, probabilistic, plastic):
    """theta and the embeddings after each of 4 steps of task 1 (t = 1 earlier task) equal the
    original's step: summed task loss / D, + beta * B * L_reg at the Adam look-ahead (e_0 +
    de_0 too when plastic), embedding clipped to 5 on the task-loss gradient, theta (and
    plastic e_0) clipped to 5 on the sum."""
    # beta 1 so that the regulariser's share of theta's gradient is large enough to matter
    strategy = _strategy_at_task_one(kind, probabilistic, beta=1.0, plastic_previous=plastic)
    ref = OriginalHnetStep(strategy, task=1)
    near_misses = [OriginalHnetStep(strategy, task=1, objective=o)
                   for o in ("mean", "sum_without_b")]
    e0_before = strategy.embeddings.embeddings[0].detach().clone()
    for i in range(4):
        x, y = _batch(10 + i)
        logs = strategy.train_step(1, x, y)
        for r in (ref, *near_misses):
            r.step(x, y)
        _assert_same_parameters(strategy, ref, atol=1e-6)
    assert set(logs) >= {"loss", "reg"} and float(logs["reg"]) > 0
    # the clip of 5 binds on the summed gradients (which is where sum and mean part ways)
    assert all(t > 5 for _, t in ref.clip_norms), ref.clip_norms
    if kind == "hnet":  # the chunked hypernetwork's embedding gradient stays near 4
        assert all(e > 5 for e, _ in ref.clip_norms), ref.clip_norms
    # measured gaps 1.6e-3 to 8e-3: each near miss is > 100x the tolerance away
    for other in near_misses:
        assert _max_gap(ref, other) > 1e-4, other.objective
    moved = not torch.equal(strategy.embeddings.embeddings[0].detach(), e0_before)
    assert moved == plastic


def _assert_close_to_scale(got: torch.Tensor, want: torch.Tensor, rel: float = 1e-10) -> None:
    """Equal up to float64 rounding: |got - want| <= rel * max|want|."""
    gap, scale = float((got - want).abs().max()), float(want.abs().max())
    assert gap <= rel * scale, (gap, scale)


def _task_gradients(strategy: HnetStrategy, x, y) -> dict[str, torch.Tensor]:
    emb = strategy.embeddings.embeddings[1].detach()
    params = {k: p.detach().clone().requires_grad_() for k, p in strategy.hnet.named_parameters()}
    w = [v[0] for v in functional_call(strategy.hnet, params, (emb[None],)).values()]
    loss = _summed_loss(*_mlp(w, x, strategy.net.probabilistic), y)
    return dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))


@pytest.fixture
def float64():
    """Build and train in float64: the regulariser is a small difference of large outputs,
    and float32 cancellation there would hide what the test is after."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("plastic", [True, False])
def test_plastic_earlier_embeddings_take_their_own_lookahead(plastic, float64):
    """With plastic_previous, the regulariser is ||W*_0 - h(e_0 + de_0; theta + dtheta)||^2,
    de_0 the look-ahead Adam change of e_0 (from its optimiser state and a zero task-loss
    gradient); its value and its gradients on theta and on e_0 equal that computed by hand,
    and e_0 moves. Without, e_0 stays fixed bit for bit."""
    # no clip, so that the gradients left in .grad after the step are the unclipped sums
    strategy = _strategy_at_task_one("hnet", False, beta=1.0, plastic_previous=plastic,
                                     clip=None)
    e0 = strategy.embeddings.embeddings[0]
    e0_end_of_task0 = e0.detach().clone()
    for i in range(3):  # build up Adam moments for e_0 (its look-ahead is 0 at step 1)
        strategy.train_step(1, *_batch(20 + i))
    x, y = _batch(30)
    state = copy.deepcopy(strategy.theta_opt.state_dict())  # before the step
    names = [k for k, _ in strategy.hnet.named_parameters()]
    theta = [p.detach().clone() for p in strategy.hnet.parameters()]
    e0_now = e0.detach().clone()
    g_task = _task_gradients(strategy, x, y)

    # by hand: the look-ahead of theta (task-loss gradient) and of e_0 (zero gradient), from
    # a plain Adam holding the strategy's optimiser state (indexed by position)
    holder = [t.clone().requires_grad_() for t in theta]
    for h, k in zip(holder, names, strict=True):
        h.grad = g_task[k]
    if plastic:
        holder.append(e0_now.clone().requires_grad_())
        holder[-1].grad = torch.zeros_like(e0_now)
    plain = torch.optim.Adam(holder, lr=strategy.opts.lr)
    plain.load_state_dict(state)
    change = _real_adam_change(plain, holder)
    de0 = change[-1] if plastic else torch.zeros_like(e0_now)
    leaf = {k: t.clone().requires_grad_() for k, t in zip(names, theta, strict=True)}
    e_leaf = e0_now.clone().requires_grad_()
    shifted = {k: leaf[k] + d for k, d in zip(names, change, strict=False)}
    out = functional_call(strategy.hnet, shifted, ((e_leaf + de0)[None],), {"flat": True})
    reg = (strategy.reg_targets - out).pow(2).sum()
    g_reg = torch.autograd.grad(reg, [*leaf.values(), e_leaf])

    logs = strategy.train_step(1, x, y)
    torch.testing.assert_close(logs["reg"], reg.detach(), rtol=1e-10, atol=0)
    scale = strategy.opts.beta * B
    for (k, p), g in zip(strategy.hnet.named_parameters(), g_reg, strict=False):
        _assert_close_to_scale(p.grad, g_task[k] + scale * g)
    if plastic:
        assert float(de0.abs().max()) > 1e-5  # the shift is there to be checked
        _assert_close_to_scale(e0.grad, scale * g_reg[-1])
        # evaluated at e_0 (no de_0), e_0's gradient would differ beyond that tolerance
        out0 = functional_call(strategy.hnet, shifted, (e_leaf[None],), {"flat": True})
        g0 = torch.autograd.grad((strategy.reg_targets - out0).pow(2).sum(), e_leaf)[0]
        gap = float((scale * (g0 - g_reg[-1])).abs().max())
        assert gap > 1e-4 * float(e0.grad.abs().max()), gap
        assert not torch.equal(e0.detach(), e0_end_of_task0)
    else:
        assert e0.grad is None or torch.equal(e0.grad, torch.zeros_like(e0))
        assert torch.equal(e0.detach(), e0_end_of_task0)


# --- baselines -------------------------------------------------------------------------------
def _module_net() -> TargetNet:
    return TargetNet(IN, OUT, hidden=(16,))


@pytest.mark.parametrize("method", ["finetune", "single", "multitask", "coreset", "ewc", "si"])
def test_every_baseline_is_multi_head_by_default_and_can_be_single_head(method):
    cls = METHODS[method]
    assert issubclass(cls, ModuleStrategy)
    assert cls.make_options().multihead is True
    assert cls.make_options(multihead=False).multihead is False
    assert cls.make_options().clip is None  # the original's baselines do not clip


def test_multi_head_finetune_trains_the_new_head_and_trunk_and_leaves_old_heads():
    s = FinetuneStrategy(_module_net(), ModuleOptions(), _gen(0))
    s.begin_task(0)
    for i in range(3):
        s.train_step(0, *_batch(i))
    s.end_task(0, *_batch(9))
    head0 = {k: v.detach().clone() for k, v in s.heads[0].items()}
    s.begin_task(1)
    head1 = {k: v.detach().clone() for k, v in s.heads[1].items()}
    trunk = {k: v.detach().clone() for k, v in s.shared().items()}
    assert set(trunk) == {"layers.0.weight", "layers.0.bias"}
    for i in range(3):
        s.train_step(1, *_batch(10 + i))
    for k in head0:
        assert torch.equal(s.heads[0][k].detach(), head0[k])  # untouched, bit for bit
        assert not torch.equal(s.heads[1][k].detach(), head1[k])
    for k in trunk:
        assert not torch.equal(s.shared()[k].detach(), trunk[k])
    x = _batch(5)[0]
    # task 0 predicts through its own head, task 1 through the new one
    w = s.weights([0, 1])
    assert torch.equal(w["layers.1.weight"][0], head0["layers.1.weight"])
    assert not torch.allclose(s.net.run({k: v[0] for k, v in w.items()}, x)[0],
                              s.net.run({k: v[1] for k, v in w.items()}, x)[0])


def _grads_after_step(s: ModuleStrategy, task: int, x, y) -> dict[int, torch.Tensor]:
    """Run one train_step; the .grad it leaves (no clip) is the total objective's gradient at
    the parameters before the step, which are returned as well."""
    before = {id(p): p.detach().clone() for p in s.trainable(task)}
    s.train_step(task, x, y)
    return before, {id(p): p.grad.detach().clone() for p in s.trainable(task)}


def _by_hand_gradient(s: ModuleStrategy, task: int, before, objective) -> dict[int, torch.Tensor]:
    params = s.trainable(task)
    leaves = [before[id(p)].clone().requires_grad_() for p in params]
    value = objective({id(p): q for p, q in zip(params, leaves, strict=True)})
    grads = torch.autograd.grad(value, leaves, allow_unused=True)
    return {id(p): g if g is not None else torch.zeros_like(p)
            for p, g in zip(params, grads, strict=True)}


def _assert_gradients_match(s, before, got, objective) -> None:
    """The step's gradients equal the by-hand objective's, on task 1's weights."""
    want = _by_hand_gradient(s, 1, before, objective)
    for k in got:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6)


def _weights_of(s: ModuleStrategy, task: int, live: dict[int, torch.Tensor]):
    return [live[id(p)] for p in s.task_weights(task).values()]


def test_coreset_adds_all_m_kept_points_scaled_by_b_over_m():
    s = CoresetStrategy(_module_net(), CoresetOptions(coreset_size=7), _gen(0))
    s.begin_task(0)
    s.train_step(0, *_batch(0))
    s.end_task(0, *_batch(1, n=40))
    s.begin_task(1)
    x, y = _batch(2)
    mx, my = s.memory[0]
    assert mx.shape[0] == 7
    before, got = _grads_after_step(s, 1, x, y)

    def objective(live):
        current = _summed_loss(*_mlp(_weights_of(s, 1, live), x, False), y)
        kept = _summed_loss(*_mlp(_weights_of(s, 0, live), mx, False), my)
        return current + kept * B / 7

    _assert_gradients_match(s, before, got, objective)


def test_multitask_adds_a_batch_of_b_from_every_earlier_task_at_weight_one():
    s = MultitaskStrategy(_module_net(), ReplayOptions(), _gen(0))
    s.begin_task(0)
    s.end_task(0, *_batch(1, n=300))
    s.begin_task(1)
    x, y = _batch(2)
    replay_gen = copy.deepcopy(s.generator)  # the draw the step is about to make
    before, got = _grads_after_step(s, 1, x, y)
    idx = torch.randperm(300, generator=replay_gen)[:B]  # the first batch of an epoch
    ox, oy = s.memory[0][0][idx], s.memory[0][1][idx]

    def objective(live):
        return (_summed_loss(*_mlp(_weights_of(s, 1, live), x, False), y)
                + _summed_loss(*_mlp(_weights_of(s, 0, live), ox, False), oy))

    _assert_gradients_match(s, before, got, objective)


def test_multitask_replays_each_earlier_task_as_a_shuffled_loader_over_epochs():
    # the original: one DataLoader(shuffle=True, drop_last=True) per earlier task, made at
    # every task's end, its iterator kept across the next task's steps
    s = MultitaskStrategy(_module_net(), ReplayOptions(), _gen(0))
    s.begin_task(0)
    s.end_task(0, *_batch(1, n=250))
    s.begin_task(1)
    drawn = []
    for i in range(4):  # two epochs of 2 batches (the last 50 of each dropped)
        s.train_step(1, *_batch(10 + i))
        drawn.append(s.batches[0].perm[s.batches[0].pos - B : s.batches[0].pos].clone())
    for epoch in (drawn[:2], drawn[2:]):
        assert torch.cat(epoch).unique().numel() == 2 * B  # no point twice in an epoch
    assert not torch.equal(torch.cat(drawn[:2]).sort()[0], torch.cat(drawn[2:]).sort()[0])
    s.end_task(1, *_batch(20, n=250))
    assert s.batches == {}  # every earlier task's loader begins anew
    s.begin_task(2)
    s.train_step(2, *_batch(21))
    assert sorted(s.batches) == [0, 1] and all(b.pos == B for b in s.batches.values())


def test_ewc_uses_the_originals_lambda_on_the_summed_loss():
    assert EWCOptions().lam == 1e4
    s = EWCStrategy(_module_net(), EWCOptions(), _gen(0))
    s.begin_task(0)
    for i in range(3):
        s.train_step(0, *_batch(i))
    xf, yf = _batch(3, n=50)
    s.end_task(0, xf, yf)
    fisher, anchor = s.terms[0]
    # empirical Fisher, by hand: per-sample gradients of 0.5 (mu - y)^2, squared, / (N - 1)
    trunk = dict(s.shared())
    by_hand = {k: torch.zeros_like(v) for k, v in trunk.items()}
    for n in range(50):
        w = [trunk["layers.0.weight"], trunk["layers.0.bias"], *s.heads[0].values()]
        mu, _ = _mlp(w, xf[n : n + 1], False)
        g = torch.autograd.grad(0.5 * (mu - yf[n : n + 1]).pow(2).sum(), list(trunk.values()))
        for k, gk in zip(trunk, g, strict=True):
            by_hand[k] += gk.pow(2) / 49
    for k in by_hand:
        torch.testing.assert_close(fisher[k], by_hand[k], rtol=1e-4, atol=1e-9)
    s.begin_task(1)
    s.train_step(1, *_batch(4))  # move the trunk off its anchor
    x, y = _batch(5)
    before, got = _grads_after_step(s, 1, x, y)
    names = list(s.task_weights(1))

    def objective(live):
        w = _weights_of(s, 1, live)
        penalty = sum((fisher[k] * (w[names.index(k)] - anchor[k]).pow(2)).sum() for k in fisher)
        return _summed_loss(*_mlp(w, x, False), y) + 1e4 * 0.5 * penalty

    _assert_gradients_match(s, before, got, objective)


def test_logged_loss_is_per_sample_while_training_is_summed():
    s = FinetuneStrategy(_module_net(), ModuleOptions(), _gen(0))
    s.begin_task(0)
    x, y = _batch(0)
    w = [p.detach().clone() for p in s.task_weights(0).values()]
    logs = s.train_step(0, x, y)
    torch.testing.assert_close(logs["loss"], _summed_loss(*_mlp(w, x, False), y) / B)
