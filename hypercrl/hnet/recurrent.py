"""Recurrent hypernetwork: the target weights chunk by chunk, each chunk depending on the ones
before it (a dependency-preserving hypernetwork, Chandra et al., WACV 2023; reference
hypernet-variants §2)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from hypercrl.hnet.base import HyperNetwork
from hypercrl.hnet.chunked import chunk_embeddings, chunk_inputs
from hypercrl.hnet.full import _xavier_


class RecurrentHyperNetwork(HyperNetwork):
    """An LSTM over the chunks of the flat target vector: step s reads [e ; c_s] and emits
    chunk s through one linear head, so each chunk depends on every earlier chunk through the
    LSTM's state (the chunked hypernetwork's chunks are independent given e).

    All tasks' sequences run as one batch of T; the tail of the last chunk beyond the target
    size is cut. The parameter count does not depend on the target's size beyond the number of
    chunk embeddings: ``4 H (H + E + E_c + 2) + H C + C + S E_c`` for S chunks of C outputs.

    Initialisation: the LSTM's weights uniform in +-1/sqrt(H) (torch's own rule, seeded), its
    biases zero but the forget gate's 1; the head xavier with a zero bias; chunk embeddings
    N(0, 1) (as the chunked hypernetwork's).

    Args:
        target_shapes: name -> shape of every target tensor.
        emb_dim: task embedding size E.
        chunk_dim: outputs per chunk C.
        chunk_emb_dim: chunk embedding size E_c.
        hidden: the LSTM's state size H.
        generator: seeds the initialisation.
    """

    def __init__(
        self,
        target_shapes: Mapping[str, tuple[int, ...]],
        emb_dim: int = 10,
        chunk_dim: int = 2000,
        chunk_emb_dim: int = 20,
        hidden: int = 20,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(target_shapes)
        if min(chunk_dim, chunk_emb_dim, hidden) < 1:
            raise ValueError(
                f"chunk_dim, chunk_emb_dim and hidden must be >= 1, got {chunk_dim}, "
                f"{chunk_emb_dim}, {hidden}"
            )
        self.emb_dim = emb_dim
        self.chunk_dim = chunk_dim
        self.chunk_emb = chunk_embeddings(
            self.num_target_params, chunk_dim, chunk_emb_dim, generator
        )
        self.num_chunks = self.chunk_emb.shape[0]
        self.rnn = nn.LSTM(emb_dim + chunk_emb_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, chunk_dim)
        with torch.no_grad():
            bound = 1.0 / math.sqrt(hidden)
            for name, p in self.rnn.named_parameters():
                if name.startswith("weight"):
                    p.copy_(torch.rand(p.shape, generator=generator) * 2 * bound - bound)
                else:
                    p.zero_()
                    if name.startswith("bias_ih"):
                        p[hidden : 2 * hidden] = 1.0  # gates i, f, g, o: remember by default
            _xavier_(self.head.weight, generator)
            self.head.bias.zero_()

    def forward_flat(self, emb: torch.Tensor) -> torch.Tensor:
        """[T, E] -> [T, n_target]."""
        t, c = emb.shape[0], self.num_chunks
        states, _ = self.rnn(chunk_inputs(emb, self.chunk_emb))  # [T, S, H]
        out = self.head(states)  # [T, S, C]
        return out.reshape(t, c * self.chunk_dim)[:, : self.num_target_params]
