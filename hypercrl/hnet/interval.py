"""Interval hypernetwork: every task owns a box of embeddings, and the boxes share a point
(HyperInterval, Krukowski et al. 2024, in its nested form; reference hypernet-variants §3).

Task t's embedding e_t enters as the centre c_t = sigma cos(e_t), sigma = eps / (2 M) for M
embedding dimensions, with a fixed radius R = eps / M in every dimension. The hypernetwork
maps the whole box [c_t - R, c_t + R] to weight bounds by interval bound propagation (IBP):
through a linear layer the centre maps as usual and the radius by |W|; through a monotone
activation the bounds map one by one. The model of task t is the weights at its box's
centre; the box's lower and upper weights are what the strategy's interval loss trains too.

Because |c_t,i| <= sigma and R = 2 sigma, every task's box holds [-sigma, sigma]^M: the boxes
always intersect. The centre of the intersection, the **universal embedding**, generates one
set of weights meant to serve every task, with no task id. The price: each task's box holds
the earlier tasks' centres, so the interval loss of a new task pulls on the weights the
regulariser holds for them. ``nested=False`` uses the embedding itself as the centre (the
non-nested HyperInterval, with a fixed radius): boxes of N(0, 1) embeddings then rarely
meet, and there is a universal embedding only where they do.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from hypercrl.hnet.full import FullHyperNetwork

# activations that are monotone, so that IBP maps their bounds one by one
MONOTONE = ("relu", "elu", "tanh", "leaky_relu")


class IntervalHyperNetwork(FullHyperNetwork):
    """The full hypernetwork over interval embeddings (nested HyperInterval).

    Args:
        target_shapes: name -> shape of every target tensor.
        emb_dim: task embedding size M.
        hidden: hidden widths of the MLP trunk.
        activation: a monotone trunk activation (one of :data:`MONOTONE`).
        eps: the interval budget: radius eps / M per dimension (and, nested, centres within
            +-eps / (2 M)).
        nested: centres sigma cos(e), so that all boxes share a point; else the embedding.
        generator: seeds the initialisation (the full hypernetwork's xavier).
    """

    def __init__(
        self,
        target_shapes: Mapping[str, tuple[int, ...]],
        emb_dim: int = 10,
        hidden: tuple[int, ...] = (50, 50),
        activation: str = "elu",
        eps: float = 1.0,
        nested: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        if activation not in MONOTONE:
            raise ValueError(
                f"activation {activation!r} is not monotone; interval bounds need one of "
                f"{list(MONOTONE)}"
            )
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        super().__init__(target_shapes, emb_dim, hidden, activation, "xavier", generator)
        self.eps = float(eps)
        self.sigma = self.eps / (2 * emb_dim)
        self.radius = self.eps / emb_dim
        self.nested = nested

    def centres(self, emb: torch.Tensor) -> torch.Tensor:
        """[T, M] task embeddings -> their boxes' centres: sigma cos(e) nested, else e."""
        return self.sigma * torch.cos(emb) if self.nested else emb

    def forward_flat(self, emb: torch.Tensor) -> torch.Tensor:
        """[T, M] -> [T, n_target]: the weights at each box's centre (its middle output)."""
        return self.generate(self.centres(emb))

    def generate(self, centres: torch.Tensor) -> torch.Tensor:
        """Weights [T, n_target] at points [T, M] of the centres' space (no cosine)."""
        return self.head(self.trunk(centres))

    def bounds(
        self, emb: torch.Tensor, scale: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(lower, middle, upper) weights [T, n_target] of each box, its radius times
        ``scale`` (the strategy ramps it up from 0), by interval bound propagation."""
        mid = self.centres(emb)
        rad = torch.full_like(mid, scale * self.radius)
        for layer in [*self.trunk, self.head]:
            if isinstance(layer, nn.Linear):
                mid = layer(mid)
                rad = rad @ layer.weight.abs().T
            else:
                low, up = layer(mid - rad), layer(mid + rad)
                mid, rad = 0.5 * (low + up), 0.5 * (up - low)
        return mid - rad, mid, mid + rad

    def universal(self, emb: torch.Tensor) -> torch.Tensor:
        """The centre [M] of the intersection of the boxes of embeddings [T, M]; ValueError
        where they do not intersect (only possible when not nested)."""
        c = self.centres(emb)
        low = (c - self.radius).max(dim=0).values
        up = (c + self.radius).min(dim=0).values
        if bool((low > up).any()):
            raise ValueError(
                f"the {len(emb)} tasks' boxes do not intersect: no universal embedding "
                "(nested=False; nested boxes always share a point)"
            )
        return 0.5 * (low + up)
