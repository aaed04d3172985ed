"""The low-rank hypernetwork variant (method ``lowrank_hnet``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hypercrl.hnet import FullHyperNetwork, LowRankHyperNetwork, param_shapes
from hypercrl.model import TargetNet


def _shapes() -> dict[str, tuple[int, ...]]:
    return param_shapes(TargetNet(12, 10, hidden=(200, 200)))  # the pusher's target


def test_it_emits_the_target_shapes_with_a_tenth_of_the_full_hypernetworks_parameters():
    shapes = _shapes()
    hnet = LowRankHyperNetwork(shapes, emb_dim=10, rank=4, hidden=(50, 50))
    out = hnet(torch.randn(3, 10))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (3, *s) for k, s in shapes.items()}
    # head: 50 x (sum over matrices of r (out + in) + biases) + its bias; base; trunk
    head_out = 4 * (200 + 12) + 4 * (200 + 200) + 4 * (10 + 200) + 200 + 200 + 10
    trunk = 10 * 50 + 50 + 50 * 50 + 50
    count = sum(p.numel() for p in hnet.parameters())
    assert count == 50 * head_out + head_out + trunk
    full = sum(p.numel() for p in FullHyperNetwork(shapes, emb_dim=10).parameters())
    assert count * 10 < full  # the aim: 10x fewer
    with_base = LowRankHyperNetwork(shapes, emb_dim=10, rank=4, hidden=(50, 50), base=True)
    base = sum(int(np.prod(s)) for s in shapes.values())
    assert sum(p.numel() for p in with_base.parameters()) == count + base


def test_each_tasks_matrices_differ_from_the_base_by_rank_r():
    shapes = _shapes()
    hnet = LowRankHyperNetwork(
        shapes, emb_dim=10, rank=3, base=True, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        hnet.head.weight.normal_()  # away from the start, where every task is the base
        out = hnet(torch.randn(2, 10))
        base = hnet.split(hnet.base[None])
    for name, shape in shapes.items():
        if len(shape) == 2:
            delta = out[name][0] - base[name][0]
            assert torch.linalg.matrix_rank(delta) == 3


def test_every_task_starts_at_the_base_and_without_one_matrices_have_xavier_scale():
    shapes = _shapes()
    hnet = LowRankHyperNetwork(
        shapes, rank=4, base=True, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        out = hnet(torch.randn(3, 10), flat=True)
    for name, w in hnet.split(out - hnet.base).items():
        if len(shapes[name]) == 2:
            assert torch.count_nonzero(w) == 0
    bare = LowRankHyperNetwork(
        shapes, rank=4, base=False, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        w = bare(torch.randn(256, 10))["layers.1.weight"]
    assert float(w.pow(2).mean()) == pytest.approx(2.0 / 400, rel=0.3)
