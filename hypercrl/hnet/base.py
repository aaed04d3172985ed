"""The shape contract between a target network and the hypernetwork that feeds it."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name; ValueError lists the known names."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def param_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    """Names and shapes of ``module``'s parameters, in registration order."""
    return {name: tuple(p.shape) for name, p in module.named_parameters()}


class HyperNetwork(nn.Module):
    """Maps task embeddings [T, E] to target weights: a flat [T, n_target] tensor.

    Subclasses implement :meth:`forward_flat`; :meth:`forward` splits its output into a dict
    name -> tensor [T, *shape] in the order of ``target_shapes``.
    """

    def __init__(self, target_shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__()
        if not target_shapes:
            raise ValueError("target_shapes is empty: the target network has no parameters")
        self.target_shapes: dict[str, tuple[int, ...]] = {
            k: tuple(v) for k, v in target_shapes.items()
        }
        self.target_sizes = [math.prod(s) for s in self.target_shapes.values()]
        self.num_target_params = sum(self.target_sizes)

    def forward_flat(self, emb: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """[T, n_target] -> dict name -> [T, *shape] (views, no copy)."""
        t = flat.shape[0]
        parts = torch.split(flat, self.target_sizes, dim=1)
        return {
            name: part.reshape(t, *shape)
            for (name, shape), part in zip(self.target_shapes.items(), parts, strict=True)
        }

    def forward(
        self, emb: torch.Tensor, flat: bool = False
    ) -> dict[str, torch.Tensor] | torch.Tensor:
        """Task embeddings [T, E] -> dict name -> weights [T, *shape] (or [T, n_target] flat)."""
        if emb.dim() != 2:
            raise ValueError(f"emb must be [T, E], got shape {tuple(emb.shape)}")
        out = self.forward_flat(emb)
        return out if flat else self.split(out)


def mlp_trunk(in_dim: int, hidden: tuple[int, ...], act: str) -> tuple[nn.Sequential, int]:
    """Linear+activation layers; returns the trunk and its output width."""
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), activation(act)]
        width = h
    return nn.Sequential(*layers), width
