"""The target network: an ordinary MLP that can also run on generated weights."""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from hypercrl.hnet.base import activation


class TargetNet(nn.Module):
    """MLP from model inputs [N, in_dim] to predictions [N, out_dim].

    Deterministic: ``forward`` returns (mean, None). Probabilistic (PETS-style): the last layer
    has 2 * out_dim outputs, the second half a raw log-variance that is soft-bounded into
    [min_logvar, max_logvar]; ``forward`` returns (mean, logvar). The bounds are buffers fixed
    at (-10, 0.5), as HyperCRL's are in effect (reference §2.1), so that every method shares
    one architecture and the hypernetwork never generates them.

    Parameter names are ``layers.{i}.weight`` / ``layers.{i}.bias``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: tuple[int, ...] = (200, 200),
        activation_name: str = "relu",
        probabilistic: bool = False,
        logvar_bounds: tuple[float, float] = (-10.0, 0.5),
    ) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1:
            raise ValueError(f"in_dim and out_dim must be >= 1, got {in_dim}, {out_dim}")
        if any(isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1
               for h in hidden):
            raise ValueError(f"hidden widths must be integers >= 1, got {tuple(hidden)}")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.hidden = tuple(hidden)
        self.activation_name = activation_name
        self.act = activation(activation_name)
        self.probabilistic = probabilistic
        widths = [in_dim, *hidden, out_dim * (2 if probabilistic else 1)]
        pairs = zip(widths[:-1], widths[1:], strict=True)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        lo, hi = logvar_bounds
        self.register_buffer("min_logvar", torch.full((out_dim,), float(lo)))
        self.register_buffer("max_logvar", torch.full((out_dim,), float(hi)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [..., in_dim] -> (mean [..., out_dim], logvar [..., out_dim] or None)."""
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        out = self.layers[-1](x)
        if not self.probabilistic:
            return out, None
        mean, raw = out[..., : self.out_dim], out[..., self.out_dim :]
        return mean, self.bound_logvar(raw)

    def bound_logvar(self, raw: torch.Tensor) -> torch.Tensor:
        """Soft clamp into [min_logvar, max_logvar] (PETS, Chua et al. 2018)."""
        lv = self.max_logvar - F.softplus(self.max_logvar - raw)
        return self.min_logvar + F.softplus(lv - self.min_logvar)

    def run(
        self, weights: dict[str, torch.Tensor], x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Forward on given weights with ``torch.func.functional_call``.

        weights: name -> tensor with the module's shapes, or with a leading task dimension T
        (batched over tasks with vmap). x: [N, in] (shared by all tasks) or [T, N, in].
        """
        name, ref = next(iter(self.named_parameters()))
        w = weights[name]
        if w.dim() == ref.dim():
            return functional_call(self, weights, (x,))
        if w.dim() != ref.dim() + 1:
            raise ValueError(f"weights[{name!r}] has shape {tuple(w.shape)}; expected "
                             f"{tuple(ref.shape)} or [T, *{tuple(ref.shape)}]")
        in_dims = 0 if x.dim() == 3 else None
        out_dims = (0, 0) if self.probabilistic else (0, None)
        return vmap(
            lambda ws, xs: functional_call(self, ws, (xs,)), in_dims=(0, in_dims),
            out_dims=out_dims,
        )(weights, x)


def gaussian_nll(
    mean: torch.Tensor, logvar: torch.Tensor | None, y: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Task loss of predictions ``mean`` (and ``logvar``) [B, D] against targets y [B, D].

    Per sample, the mean over the D dimensions of: the squared error (deterministic, logvar
    None), or the Gaussian NLL without its constant, (mu - y)^2 exp(-logvar) + logvar, as
    PETS and HyperCRL train it. ``reduction="sum"`` sums that over the batch, which is the
    original's training objective (reference §3.1: sum_b sum_d (...) / D); ``"mean"`` averages
    it (the per-sample loss, for logs and evaluation); ``"none"`` gives each sample's. The
    original's probabilistic loss also adds 0.01 * (sum max_logvar - sum min_logvar); the
    bounds are fixed buffers here, so that term is a constant without gradient and is left
    out.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if logvar is None:
        per_dim = (mean - y).pow(2)
    else:
        per_dim = (mean - y).pow(2) * torch.exp(-logvar) + logvar
    if reduction == "mean":
        return per_dim.mean()
    if reduction == "none":
        return per_dim.mean(-1)
    return per_dim.sum() / per_dim.shape[-1]
