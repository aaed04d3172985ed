"""Chunked hypernetwork: one small network emits the target weights chunk by chunk."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from hypercrl.hnet.base import HyperNetwork, mlp_trunk
from hypercrl.hnet.full import _xavier_


class ChunkedHyperNetwork(HyperNetwork):
    """h(e, c_k) -> chunk k of the flat target vector, for learned chunk embeddings c_k.

    All chunks of all requested tasks go through one batched forward of [T * C, E + E_c]
    inputs; the tail of the last chunk beyond the target size is cut. Chunk embeddings are
    part of theta and start at N(0, 1).

    Args:
        target_shapes: name -> shape of every target tensor.
        emb_dim: task embedding size E.
        chunk_dim: outputs per chunk.
        chunk_emb_dim: chunk embedding size E_c.
        hidden: hidden widths of the MLP.
        activation: activation name (the original uses relu).
    """

    def __init__(
        self,
        target_shapes: Mapping[str, tuple[int, ...]],
        emb_dim: int = 10,
        chunk_dim: int = 2000,
        chunk_emb_dim: int = 20,
        hidden: tuple[int, ...] = (20, 20),
        activation: str = "relu",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(target_shapes)
        if chunk_dim < 1 or chunk_emb_dim < 1:
            raise ValueError(f"chunk_dim and chunk_emb_dim must be >= 1, got {chunk_dim}, "
                             f"{chunk_emb_dim}")
        self.emb_dim = emb_dim
        self.chunk_dim = chunk_dim
        self.chunk_emb = chunk_embeddings(
            self.num_target_params, chunk_dim, chunk_emb_dim, generator
        )
        self.num_chunks = self.chunk_emb.shape[0]
        self.trunk, width = mlp_trunk(emb_dim + chunk_emb_dim, tuple(hidden), activation)
        self.head = nn.Linear(width, chunk_dim)
        with torch.no_grad():
            for layer in [*self.trunk, self.head]:
                if isinstance(layer, nn.Linear):
                    _xavier_(layer.weight, generator)
                    layer.bias.zero_()

    def forward_flat(self, emb: torch.Tensor) -> torch.Tensor:
        """[T, E] -> [T, n_target]."""
        t, c = emb.shape[0], self.num_chunks
        inputs = chunk_inputs(emb, self.chunk_emb)
        out = self.head(self.trunk(inputs.reshape(t * c, -1)))
        return out.reshape(t, c * self.chunk_dim)[:, : self.num_target_params]


def chunk_embeddings(
    n_target: int, chunk_dim: int, chunk_emb_dim: int, generator: torch.Generator | None
) -> nn.Parameter:
    """N(0, 1) embeddings [S, E_c] of the S = ceil(n_target / chunk_dim) chunks."""
    chunks = math.ceil(n_target / chunk_dim)
    return nn.Parameter(torch.randn(chunks, chunk_emb_dim, generator=generator))


def chunk_inputs(emb: torch.Tensor, chunk_emb: torch.Tensor) -> torch.Tensor:
    """Every task's embedding [T, E] beside every chunk's [S, E_c]: [T, S, E + E_c]."""
    t, c = emb.shape[0], chunk_emb.shape[0]
    return torch.cat([emb[:, None, :].expand(t, c, -1), chunk_emb[None].expand(t, c, -1)], dim=-1)
