"""The recurrent hypernetwork variant (method ``recurrent_hnet``)."""

from __future__ import annotations

import pytest
import torch

from hypercrl import ContinualDynamics
from hypercrl.hnet import ChunkedHyperNetwork, RecurrentHyperNetwork, param_shapes
from hypercrl.model import TargetNet

SHAPES = param_shapes(TargetNet(12, 10, hidden=(200, 200)))  # the pusher's target: 44,810


def test_it_emits_the_target_shapes_with_the_chunked_ones_parameter_budget():
    hnet = RecurrentHyperNetwork(SHAPES, emb_dim=10, chunk_dim=2000, chunk_emb_dim=20, hidden=20)
    out = hnet(torch.randn(3, 10))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (3, *s) for k, s in SHAPES.items()}
    chunks = 23  # ceil(44810 / 2000)
    lstm = 4 * 20 * (20 + 30 + 2)
    head = 20 * 2000 + 2000
    assert hnet.num_chunks == chunks
    assert sum(p.numel() for p in hnet.parameters()) == lstm + head + chunks * 20
    chunked = sum(p.numel() for p in ChunkedHyperNetwork(SHAPES).parameters())
    assert sum(p.numel() for p in hnet.parameters()) < 1.1 * chunked


def _chunk_change(hnet, early: int, late: int) -> float:
    """How much chunk ``late``'s output moves when chunk ``early``'s embedding does."""
    emb = torch.randn(1, 10, generator=torch.Generator().manual_seed(1))
    c = hnet.chunk_dim
    with torch.no_grad():
        before = hnet(emb, flat=True)[0, late * c : (late + 1) * c].clone()
        hnet.chunk_emb[early] += 1.0
        after = hnet(emb, flat=True)[0, late * c : (late + 1) * c]
    return float((after - before).abs().max())


def test_a_chunk_depends_on_the_chunks_before_it_and_not_after():
    gen = torch.Generator().manual_seed(0)
    rnn = RecurrentHyperNetwork(SHAPES, chunk_dim=2000, generator=gen)
    assert _chunk_change(rnn, early=0, late=5) > 1e-4
    assert _chunk_change(rnn, early=5, late=0) == 0.0
    # the chunked hypernetwork's chunks are independent given the task
    assert _chunk_change(ChunkedHyperNetwork(SHAPES, generator=gen), early=0, late=5) == 0.0


def test_every_task_gets_its_own_weights_in_one_batched_forward():
    rnn = RecurrentHyperNetwork(SHAPES, chunk_dim=2000, generator=torch.Generator().manual_seed(0))
    emb = torch.randn(3, 10)
    with torch.no_grad():
        together = rnn(emb, flat=True)
        alone = torch.cat([rnn(emb[i : i + 1], flat=True) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-6)
    assert not torch.allclose(together[0], together[1])


def test_bad_sizes_are_refused_by_name():
    with pytest.raises(ValueError, match="chunk_dim"):
        RecurrentHyperNetwork(SHAPES, chunk_dim=0)
    with pytest.raises(ValueError, match="rnn_hidden"):
        ContinualDynamics(4, 2, "recurrent_hnet", seed=0, rnn_hidden=0)
