"""MIP: a magnitude-invariant hypernetwork (Ortiz, Guttag, Dalca, ICLR 2024; reference
hypernet-variants §1).

A hypernetwork with (nearly) positively homogeneous activations generates weights whose scale
follows the norm of its input: theta(c e) is about c theta(e), so a task embedding that drifts
in norm rescales the whole target network, and e near 0 gives a dead one. MIP removes both:

1. **Constant-norm encoding.** Each embedding coordinate e_i enters the trunk as
   [cos(pi e_i / 2), sin(pi e_i / 2)], so the trunk's input has norm sqrt(E) whatever e is.
2. **Additive output.** theta(e) = theta_0 + h(E(e)): theta_0 is the head's bias. The full
   hypernetwork has that bias too, initialised at zero; here it starts as a target network
   does (xavier-uniform matrices, zero biases), so every task starts from a working network
   plus a task-dependent part. No parameter is added, and theta_0 is part of theta, so the
   output regulariser holds it like everything else theta generates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from hypercrl.hnet.full import FullHyperNetwork, _xavier_

ENCODINGS = ("cos_sin", "none")


class MipHyperNetwork(FullHyperNetwork):
    """The full hypernetwork with MIP's input encoding and additive output.

    Args:
        target_shapes: name -> shape of every target tensor.
        emb_dim: task embedding size E (the trunk sees 2E inputs with ``"cos_sin"``).
        hidden: hidden widths of the MLP trunk.
        activation: trunk activation name.
        encoding: ``"cos_sin"`` (MIP's) or ``"none"`` (the embedding as it is).
        residual: add theta_0, the head's bias initialised as a target network.
        generator: seeds the initialisation.
    """

    def __init__(
        self,
        target_shapes: Mapping[str, tuple[int, ...]],
        emb_dim: int = 10,
        hidden: tuple[int, ...] = (50, 50),
        activation: str = "elu",
        encoding: str = "cos_sin",
        residual: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; valid: {list(ENCODINGS)}")
        trunk_in = 2 * emb_dim if encoding == "cos_sin" else emb_dim
        super().__init__(target_shapes, trunk_in, hidden, activation, "xavier", generator)
        self.emb_dim = emb_dim
        self.encoding = encoding
        self.residual = residual
        if residual:
            self._init_theta0(generator)

    @torch.no_grad()
    def _init_theta0(self, generator: torch.Generator | None) -> None:
        blocks = torch.split(self.head.bias, self.target_sizes)
        for shape, block in zip(self.target_shapes.values(), blocks, strict=True):
            if len(shape) == 2:
                _xavier_(block.view(shape), generator)

    def encode(self, emb: torch.Tensor) -> torch.Tensor:
        """[T, E] -> the trunk's input: [T, 2E] of cosines then sines, or emb itself."""
        if self.encoding == "none":
            return emb
        half_pi = 0.5 * math.pi * emb
        return torch.cat([torch.cos(half_pi), torch.sin(half_pi)], dim=1)

    def forward_flat(self, emb: torch.Tensor) -> torch.Tensor:
        """[T, E] -> [T, n_target]; the head's bias is theta_0 (zero without ``residual``)."""
        return self.apply_head(self.trunk(self.encode(emb)))
