"""The magnitude-invariant hypernetwork variant (method ``mip_hnet``)."""

from __future__ import annotations

import pytest
import torch

from hypercrl import ContinualDynamics
from hypercrl.hnet import FullHyperNetwork, MipHyperNetwork, param_shapes
from hypercrl.model import TargetNet

SHAPES = param_shapes(TargetNet(12, 10, hidden=(200, 200)))  # the pusher's target


def _norms(hnet, emb: torch.Tensor, scales) -> list[float]:
    with torch.no_grad():
        return [float(hnet(c * emb, flat=True).norm()) for c in scales]


def test_it_emits_the_target_shapes_with_e_more_parameters_than_the_full_one():
    gen = torch.Generator().manual_seed(0)
    mip = MipHyperNetwork(SHAPES, emb_dim=10, hidden=(50, 50), generator=gen)
    out = mip(torch.randn(3, 10))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (3, *s) for k, s in SHAPES.items()}
    full = FullHyperNetwork(SHAPES, emb_dim=10, hidden=(50, 50))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # the first trunk layer sees 2E inputs (cosines and sines); theta_0 is the head's bias
    assert count(mip) == count(full) + 10 * 50
    plain = MipHyperNetwork(SHAPES, emb_dim=10, encoding="none", residual=False)
    assert count(plain) == count(full)


def test_generated_weights_do_not_scale_with_the_embeddings_norm():
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(1, 10, generator=gen)
    scales = (0.1, 1.0, 3.0)
    # ReLU without the encoding: theta(c e) grows with c (biases start at zero)
    full = FullHyperNetwork(SHAPES, hidden=(50, 50), activation="relu", generator=gen)
    small, _, large = _norms(full, emb, scales)
    assert large / small > 10
    mip = MipHyperNetwork(SHAPES, hidden=(50, 50), activation="relu", generator=gen)
    norms = _norms(mip, emb, scales)
    assert max(norms) / min(norms) < 1.5, norms


def test_a_zero_embedding_gives_a_working_target_network():
    gen = torch.Generator().manual_seed(0)
    mip = MipHyperNetwork(SHAPES, hidden=(50, 50), generator=gen)
    with torch.no_grad():
        w = mip(torch.zeros(1, 10))
        theta0 = mip.split(mip.head.bias.detach()[None])
    for name, shape in SHAPES.items():
        if len(shape) == 2:  # theta_0's matrices have xavier variance; every bias starts at 0
            bound2 = 6.0 / (shape[0] + shape[1])
            assert float(theta0[name].pow(2).mean()) == pytest.approx(bound2 / 3, rel=0.1)
            assert float(w[name].std()) > 0.5 * float(theta0[name].std())
        else:
            assert torch.count_nonzero(theta0[name]) == 0
    bare = FullHyperNetwork(SHAPES, hidden=(50, 50), activation="relu")
    with torch.no_grad():
        assert float(bare(torch.zeros(1, 10), flat=True).abs().max()) == 0.0  # dead


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match="encoding"):
        MipHyperNetwork(SHAPES, encoding="sin")
    with pytest.raises(ValueError, match="encoding"):
        ContinualDynamics(4, 2, "mip_hnet", seed=0, encoding="l3")
    with pytest.raises(ValueError, match="init"):
        ContinualDynamics(4, 2, "mip_hnet", seed=0, init="hyperfan_in")
