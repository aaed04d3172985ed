"""Target net on generated weights, state spec, normaliser and the fast predictor."""

import math

import pytest
import torch

from hypercrl.hnet import FullHyperNetwork, param_shapes
from hypercrl.model import Normalizer, Predictor, StateSpec, TargetNet, gaussian_nll, quat_mul


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("probabilistic", [False, True])
def test_functional_call_on_generated_weights_equals_loaded_module(probabilistic):
    net = TargetNet(5, 3, hidden=(16, 16), probabilistic=probabilistic)
    hnet = FullHyperNetwork(param_shapes(net), emb_dim=4, hidden=(8,), generator=_gen())
    w = hnet(torch.randn(3, 4))
    x = torch.randn(7, 5)
    batched_mean, batched_lv = net.run(w, x)  # vmap over the task dimension
    for t in range(3):
        loaded = TargetNet(5, 3, hidden=(16, 16), probabilistic=probabilistic)
        loaded.load_state_dict({k: v[t] for k, v in w.items()}, strict=False)
        mean, lv = loaded(x)
        single_mean, _ = net.run({k: v[t] for k, v in w.items()}, x)
        torch.testing.assert_close(single_mean, mean)
        torch.testing.assert_close(batched_mean[t], mean)
        if probabilistic:
            torch.testing.assert_close(batched_lv[t], lv)
            assert (lv >= -10).all() and (lv <= 0.5).all()


def test_spec_round_trip_delta_absolute_angle():
    spec = StateSpec(["delta", "absolute", "angle"])
    s = torch.tensor([[1.0, 2.0, 3.0]])
    s2 = torch.tensor([[1.5, -4.0, -3.0]])  # angle crosses pi
    target = spec.targets(s, s2)
    assert target[0, 2].abs() < 1.0  # wrapped: 3 -> -3 is a small turn
    back = spec.apply(s, target)
    torch.testing.assert_close(back[:, :2], s2[:, :2])
    assert math.isclose(math.remainder(back[0, 2].item() - (-3.0), 2 * math.pi), 0, abs_tol=1e-5)
    feats = spec.features(s)  # the absolute dim is an output only (reference §2.4)
    torch.testing.assert_close(feats, torch.tensor([[1.0, math.cos(3.0), math.sin(3.0)]]))
    fed = StateSpec(["delta", "absolute", "angle"], absolute_inputs=True)
    torch.testing.assert_close(fed.features(s),
                               torch.tensor([[1.0, 2.0, math.cos(3.0), math.sin(3.0)]]))
    assert (spec.feature_dim, fed.feature_dim) == (3, 4)


def test_states_come_back_from_their_features():
    spec = StateSpec(["angle", "delta", "quat", "quat", "quat", "quat", "absolute", "angle"])
    s = torch.randn(16, 8, generator=_gen(3)) * 2.0
    s[:, [0, 7]] = torch.rand(16, 2, generator=_gen(4)) * 6.0 - 3.0  # inside (-pi, pi]
    kinds = ["angle", "delta", "quat", "quat", "quat", "quat", "absolute", "angle"]
    fed = StateSpec(kinds, absolute_inputs=True)
    torch.testing.assert_close(fed.states_from_features(fed.features(s)), s, atol=1e-5, rtol=0)
    # without absolute inputs the absolute dim is not in the features and comes back 0
    back = spec.states_from_features(spec.features(s))
    torch.testing.assert_close(back[:, :6], s[:, :6], atol=1e-5, rtol=0)
    torch.testing.assert_close(back[:, 7], s[:, 7], atol=1e-5, rtol=0)
    assert (back[:, 6] == 0).all()
    plain = StateSpec(["delta", "absolute"], absolute_inputs=True)
    torch.testing.assert_close(plain.states_from_features(plain.features(s[:, :2])), s[:, :2])
    assert StateSpec(["delta", "absolute"]).features(s[:, :2]).shape == (16, 1)


def _random_quat(n, seed):
    q = torch.randn(n, 4, generator=_gen(seed))
    return q / q.norm(dim=1, keepdim=True)


def test_quaternion_block_composes_in_one_convention():
    spec = StateSpec(["delta", "quat", "quat", "quat", "quat"])
    q, q2 = _random_quat(50, 1), _random_quat(50, 2)
    s = torch.cat([torch.zeros(50, 1), q], 1)
    s2 = torch.cat([torch.ones(50, 1), q2], 1)
    target = spec.targets(s, s2)
    assert (target[:, 1] >= 0).all()  # canonical sign
    back = spec.apply(s, target)
    # same rotation: equal up to sign
    dot = (back[:, 1:] * q2).sum(1).abs()
    torch.testing.assert_close(dot, torch.ones(50))
    # Hamilton product, [w, x, y, z]: i * j = k
    i, j = torch.tensor([0.0, 1, 0, 0]), torch.tensor([0.0, 0, 1, 0])
    torch.testing.assert_close(quat_mul(i, j), torch.tensor([0.0, 0, 0, 1]))


def test_spec_rejects_bad_kinds():
    with pytest.raises(ValueError, match="unknown kinds"):
        StateSpec(["delta", "velocity"])
    with pytest.raises(ValueError, match="blocks of 4"):
        StateSpec(["quat"] * 3)


@pytest.mark.parametrize("normalize_targets", [False, True])
def test_normaliser_freezes(normalize_targets):
    norm = Normalizer(2, 1, normalize_targets)
    norm.fit(torch.tensor([[0.0, 1.0], [2.0, 1.0]]), torch.tensor([[1.0], [3.0]]))
    torch.testing.assert_close(norm.x_mean, torch.tensor([1.0, 1.0]))
    assert norm.x_std[1] == 1.0  # constant dimension
    norm.freeze()
    with pytest.raises(RuntimeError, match="frozen"):
        norm.fit(torch.zeros(3, 2), torch.zeros(3, 1))
    if normalize_targets:
        torch.testing.assert_close(norm.y_mean, torch.tensor([2.0]))
        torch.testing.assert_close(norm.y_std, torch.tensor([2.0**0.5]))
    else:  # the original's rule: raw targets
        assert torch.equal(norm.y_mean, torch.zeros(1)) and torch.equal(norm.y_std, torch.ones(1))
        y = torch.tensor([[1.5], [-7.0]])
        assert torch.equal(norm.norm_y(y), y) and torch.equal(norm.denorm_y(y), y)


def test_normaliser_state_dict_loads_across_the_target_flag():
    """The flag is config, not state: a standardising normaliser's statistics load into one
    built without it (an old save); the buffers are the five the flag was added with, and
    the visited range (s_low, s_high) that ``clip_states`` added later."""
    old = Normalizer(2, 1, normalize_targets=True)
    old.fit(torch.randn(10, 2), torch.randn(10, 1) + 3)
    new = Normalizer(2, 1)
    new.load_state_dict(old.state_dict())
    assert set(old.state_dict()) == {"x_mean", "x_std", "y_mean", "y_std", "frozen", "s_low",
                                     "s_high"}
    assert torch.equal(new.y_mean, old.y_mean)


@pytest.mark.parametrize("kinds", [["delta"] * 3, ["absolute", "angle", "delta"]])
@pytest.mark.parametrize("probabilistic", [False, True])
@pytest.mark.parametrize("normalize_targets", [False, True])
def test_predictor_matches_the_unfused_model(kinds, probabilistic, normalize_targets):
    spec = StateSpec(kinds)
    net = TargetNet(spec.feature_dim + 2, 3, hidden=(32, 32), activation_name="elu",
                    probabilistic=probabilistic)
    norm = Normalizer(net.in_dim, 3, normalize_targets)
    norm.fit(torch.randn(100, net.in_dim) * 3 + 1, torch.randn(100, 3) * 0.1 + 0.2)
    weights = dict(net.named_parameters())
    pred = Predictor(net, weights, spec, norm)
    s, a = torch.randn(20, 3), torch.randn(20, 2)

    def reference(s, a):
        x = norm.norm_x(torch.cat([spec.features(s), a], 1))
        mean, _ = net(x)
        return spec.apply(s, norm.denorm_y(mean))

    with torch.no_grad():
        torch.testing.assert_close(pred(s, a), reference(s, a), rtol=1e-4, atol=1e-5)
        actions = torch.randn(20, 6, 2)
        roll = pred.rollout(s, actions)
        state = s
        for h in range(6):
            state = reference(state, actions[:, h])
            torch.testing.assert_close(roll[:, h], state, rtol=1e-4, atol=1e-4)
        # a single start state broadcasts over the population
        torch.testing.assert_close(pred.rollout(s[0], actions)[:, 0], pred(s[:1].expand(20, 3),
                                   actions[:, 0]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("probabilistic", [False, True])
def test_task_loss_is_the_originals_sum_over_batch_of_the_mean_over_dims(probabilistic,
                                                                          reduction):
    mean, y = torch.randn(7, 3, generator=_gen(1)), torch.randn(7, 3, generator=_gen(2))
    logvar = torch.randn(7, 3, generator=_gen(3)) if probabilistic else None
    per = (mean - y).pow(2) if logvar is None else (mean - y).pow(2) * (-logvar).exp() + logvar
    by_hand = sum(per[b].sum() / 3 for b in range(7))  # sum_b sum_d l / D
    expected = by_hand if reduction == "sum" else by_hand / 7
    torch.testing.assert_close(gaussian_nll(mean, logvar, y, reduction), expected)
