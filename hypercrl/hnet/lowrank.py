"""Low-rank hypernetwork: each generated weight matrix is a shared base plus a task's rank-r
product, W_l(e) = W0_l + A_l(e) B_l(e)^T (a generated LoRA; LoGAH's low-rank decoder,
reference hypernet-variants §4)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from hypercrl.hnet.base import HyperNetwork, mlp_trunk
from hypercrl.hnet.full import _xavier_


class LowRankHyperNetwork(HyperNetwork):
    """h(e) = W0 + [A_l(e) B_l(e)^T per matrix; c_l(e) per other tensor].

    One MLP trunk maps the task embedding to a feature z [k]; one fused linear head maps z to
    every matrix's factors A_l [out, r] and B_l [in, r] and every bias's values. The head has
    ``k * sum_l (r (out_l + in_l) + n_bias_l)`` weights instead of the full hypernetwork's
    ``k * n_target``: at pusher size and r = 4, 192k parameters in all instead of 2.29M.

    ``base=True`` adds W0 [n_target], part of theta like every other parameter: it is learned
    with the first task and afterwards held, as everything theta generates, by the output
    regulariser; each task then differs from it by rank r per matrix (and free biases).
    ``base=False`` generates every matrix as the rank-r product alone.

    Initialisation: trunk xavier; W0's matrices xavier-uniform on each target layer's fan-in
    and fan-out, its biases zero; the head's A and bias blocks xavier, its B blocks zero, so
    that every task starts at W0 (as LoRA starts at the pretrained weights). Without a base,
    B's blocks are xavier too and each product is scaled to its target layer's xavier
    variance, measured on N(0, 1) embeddings.

    Args:
        target_shapes: name -> shape of every target tensor.
        emb_dim: task embedding size E.
        rank: r, the rank of each matrix's task-specific part.
        hidden: hidden widths of the MLP trunk.
        activation: trunk activation name.
        base: whether to add the shared full-rank base W0.
        generator: seeds the initialisation.
    """

    def __init__(
        self,
        target_shapes: Mapping[str, tuple[int, ...]],
        emb_dim: int = 10,
        rank: int = 4,
        hidden: tuple[int, ...] = (50, 50),
        activation: str = "elu",
        base: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(target_shapes)
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.emb_dim, self.rank = emb_dim, rank
        self.trunk, width = mlp_trunk(emb_dim, tuple(hidden), activation)
        # per target tensor: how many head outputs it takes ([out, r] then [in, r] factors for
        # a matrix, its values otherwise)
        self.head_sizes = [
            rank * (s[0] + s[1]) if len(s) == 2 else math.prod(s)
            for s in self.target_shapes.values()
        ]
        self.head = nn.Linear(width, sum(self.head_sizes))
        self.base = nn.Parameter(torch.zeros(self.num_target_params)) if base else None
        # without a base, each product is rescaled to its target layer's xavier variance
        self.product_scale = [1.0] * len(self.head_sizes)
        self._init(generator)

    @torch.no_grad()
    def _init(self, generator: torch.Generator | None) -> None:
        for layer in self.trunk:
            if isinstance(layer, nn.Linear):
                _xavier_(layer.weight, generator)
                layer.bias.zero_()
        self.head.bias.zero_()
        blocks = torch.split(self.head.weight, self.head_sizes, dim=0)
        shapes = list(self.target_shapes.values())
        for block in blocks:
            _xavier_(block, generator)
        if self.base is not None:
            for shape, block, base in zip(
                shapes, blocks, torch.split(self.base, self.target_sizes), strict=True
            ):
                if len(shape) == 2:
                    block[shape[0] * self.rank :].zero_()  # B = 0: every task starts at W0
                    _xavier_(base.view(shape), generator)
            return
        # no base: scale each product to its target layer's xavier variance, measured on
        # N(0, 1) embeddings (the product's scale depends on the trunk's output)
        probe = self.forward_flat(torch.randn(256, self.emb_dim, generator=generator))
        for i, (shape, w) in enumerate(zip(shapes, self.split(probe).values(), strict=True)):
            if len(shape) == 2:
                var = float(w.pow(2).mean().clamp_min(1e-12))
                self.product_scale[i] = math.sqrt(2.0 / (shape[0] + shape[1]) / var)

    def forward_flat(self, emb: torch.Tensor) -> torch.Tensor:
        """[T, E] -> [T, n_target]."""
        t = emb.shape[0]
        out = self.head(self.trunk(emb))
        parts = []
        for shape, chunk, scale in zip(
            self.target_shapes.values(),
            torch.split(out, self.head_sizes, dim=1),
            self.product_scale,
            strict=True,
        ):
            if len(shape) == 2:
                out_dim, in_dim = shape
                a = chunk[:, : out_dim * self.rank].reshape(t, out_dim, self.rank)
                b = chunk[:, out_dim * self.rank :].reshape(t, in_dim, self.rank)
                w = torch.bmm(a, b.transpose(1, 2)).reshape(t, -1)
                parts.append(w * scale if scale != 1.0 else w)
            else:
                parts.append(chunk)
        flat = torch.cat(parts, dim=1)
        return flat + self.base if self.base is not None else flat
