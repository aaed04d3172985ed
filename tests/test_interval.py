"""The interval hypernetwork variant (method ``interval_hnet``, nested HyperInterval)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_continual import HNET, TASKS
from test_hnet_variants import SEEDS, _task0_error

from hypercrl import ContinualDynamics
from hypercrl.hnet import FullHyperNetwork, IntervalHyperNetwork, param_shapes
from hypercrl.model import TargetNet
from hypercrl.synthetic import split

SHAPES = param_shapes(TargetNet(4, 3, hidden=(16, 16)))


def _hnet(**kw) -> IntervalHyperNetwork:
    return IntervalHyperNetwork(SHAPES, emb_dim=6, hidden=(12, 12),
                                generator=torch.Generator().manual_seed(0), **kw)


@pytest.mark.parametrize("activation", ["elu", "relu", "tanh", "leaky_relu"])
def test_the_bounds_hold_the_weights_of_every_point_of_the_box(activation):
    hnet = _hnet(activation=activation, eps=3.0, nested=False)
    emb = torch.randn(2, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        low, _, up = hnet.bounds(emb)
        assert (up - low).min() >= 0 and (up - low).max() > 0
        gen = torch.Generator().manual_seed(2)
        for i in range(20):  # random points of each box, corners first
            u = torch.rand(2, 6, generator=gen)
            u = u.round() if i < 5 else u
            point = hnet.centres(emb) + (2 * u - 1) * hnet.radius
            w = hnet.generate(point)
            assert (w >= low - 1e-6).all() and (w <= up + 1e-6).all()


def test_a_box_of_no_size_is_the_point_at_its_centre():
    hnet = _hnet()
    emb = torch.randn(3, 6)
    with torch.no_grad():
        low, mid, up = hnet.bounds(emb, scale=0.0)
        point = hnet(emb, flat=True)
    assert torch.allclose(low, point) and torch.allclose(mid, point) and torch.allclose(up, point)
    full = FullHyperNetwork(SHAPES, emb_dim=6, hidden=(12, 12))
    assert sum(p.numel() for p in hnet.parameters()) == sum(p.numel() for p in full.parameters())


def test_nested_boxes_always_share_the_universal_point():
    hnet = _hnet(eps=0.5)
    emb = 5 * torch.randn(8, 6)  # far apart as embeddings; their centres are sigma cos(e)
    u = hnet.universal(emb)
    c = hnet.centres(emb)
    assert ((u - c).abs() <= hnet.radius + 1e-7).all()
    apart = _hnet(eps=0.5, nested=False)
    with pytest.raises(ValueError, match="do not intersect"):
        apart.universal(emb)


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match="not monotone"):
        _hnet(activation="silu")
    with pytest.raises(ValueError, match="hnet_activation"):
        ContinualDynamics(4, 2, "interval_hnet", seed=0, hnet_activation="silu")
    for bad in ({"eps": 0}, {"kappa": 1.5}, {"warmup": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ContinualDynamics(4, 2, "interval_hnet", seed=0, **bad)


def test_the_universal_embedding_gives_one_model_for_every_task():
    cd = ContinualDynamics(4, 2, "interval_hnet", seed=0, hidden=(32, 32), hnet_hidden=(8, 8),
                           warmup=10)
    for task in TASKS[:2]:
        cd.begin_task()
        cd.fit(*split(task)[0], steps=30)
        cd.end_task()
    strategy = cd.strategy
    assert strategy.has_universal()
    w = strategy.universal_weights()
    assert {k: tuple(v.shape[1:]) for k, v in w.items()} == dict(param_shapes(cd.net))
    assert strategy.task_steps == 30  # the ramp restarts at each task
    # the universal point lies in every task's box, so its weights within every task's bounds
    hnet, emb = strategy.hnet, strategy.embeddings(range(2)).detach()
    with torch.no_grad():
        point = strategy._universal_centre()
        assert ((point - hnet.centres(emb)).abs() <= hnet.radius + 1e-6).all()
        flat = hnet.generate(point[None])[0]
        low, _, up = hnet.bounds(emb)
    assert (flat >= low - 1e-5).all() and (flat <= up + 1e-5).all()


def test_without_nesting_the_regulariser_holds_an_earlier_task():
    own, after = np.array([_task0_error("interval_hnet", seed, **HNET, warmup=100, nested=False)
                           for seed in SEEDS]).T
    assert np.median(after / own) <= 1.2, (own, after)  # seeds 0-4, one thread: 0.77-1.57
