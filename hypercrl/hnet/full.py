"""HyperCRL's full hypernetwork: embedding -> MLP -> one linear head per target tensor."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from hypercrl.hnet.base import HyperNetwork, mlp_trunk

INITS = ("xavier", "hyperfan_in")


class FullHyperNetwork(HyperNetwork):
    """h(e) = Linear(MLP(e)): every target weight from one task embedding.

    The per-tensor heads of the original are stored as one fused [n_target, k] linear layer,
    so a batch of T embeddings costs one matmul; each head's block is initialised on its own.

    Args:
        target_shapes: name -> shape of every target tensor (see ``param_shapes``).
        emb_dim: task embedding size E.
        hidden: hidden widths of the MLP trunk.
        activation: trunk activation name.
        init: ``"xavier"`` (the original's: xavier-uniform weights, zero biases, every head on
            its own fan-out) or ``"hyperfan_in"`` (Chang et al. 2020: heads scaled so that each
            generated target layer has fan-in variance for N(0, 1) embeddings).
        generator: seeds the initialisation.
    """

    def __init__(
        self,
        target_shapes: Mapping[str, tuple[int, ...]],
        emb_dim: int = 10,
        hidden: tuple[int, ...] = (50, 50),
        activation: str = "elu",
        init: str = "xavier",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(target_shapes)
        if init not in INITS:
            raise ValueError(f"unknown hypernetwork init {init!r}; valid: {list(INITS)}")
        self.emb_dim = emb_dim
        self.trunk, width = mlp_trunk(emb_dim, tuple(hidden), activation)
        self.head = nn.Linear(width, self.num_target_params)
        # set by a training step that wants the head's weight gradient as factors
        # (hypercrl.cl.rank_one.HeadRecorder); None: the head is a plain linear layer
        self.head_recorder = None
        self._init(init, generator)

    @torch.no_grad()
    def _init(self, init: str, generator: torch.Generator | None) -> None:
        for layer in self.trunk:
            if isinstance(layer, nn.Linear):
                _xavier_(layer.weight, generator)
                layer.bias.zero_()
        self.head.bias.zero_()
        k = self.head.in_features
        if init == "hyperfan_in":
            # second moment of the head's input for N(0, 1) embeddings, measured, not assumed
            probe = torch.randn(4096, self.emb_dim, generator=generator)
            e2 = float(self.trunk(probe).pow(2).mean().clamp_min(1e-8))
        rows = torch.split(self.head.weight, self.target_sizes, dim=0)
        for shape, block in zip(self.target_shapes.values(), rows, strict=True):
            if init == "xavier":
                bound = math.sqrt(6.0 / (k + block.shape[0]))
            else:
                # half the output variance from weights, half from biases (Chang et al., §4)
                fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
                var = 1.0 / (2.0 * fan_in * k * e2)
                bound = math.sqrt(3.0 * var)
            block.copy_(torch.rand(block.shape, generator=generator) * 2 * bound - bound)

    def forward_flat(self, emb: torch.Tensor) -> torch.Tensor:
        """[T, E] -> [T, n_target]."""
        return self.apply_head(self.trunk(emb))

    def apply_head(self, feats: torch.Tensor) -> torch.Tensor:
        """The head on the trunk's features; through ``head_recorder`` where one is set."""
        if self.head_recorder is None:
            return self.head(feats)
        return self.head_recorder.linear(feats, self.head.weight, self.head.bias)


def _xavier_(weight: torch.Tensor, generator: torch.Generator | None) -> None:
    fan_out, fan_in = weight.shape
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    weight.copy_(torch.rand(weight.shape, generator=generator) * 2 * bound - bound)
