"""HyperCRL's output regulariser and the Adam look-ahead it is evaluated at."""

from __future__ import annotations

import torch
from torch.func import functional_call

from hypercrl.hnet.base import HyperNetwork


@torch.no_grad()
def adam_lookahead(optimizer: torch.optim.Adam) -> dict[torch.nn.Parameter, torch.Tensor]:
    """The parameter change the next ``optimizer.step()`` would make with the current grads.

    Computed from copies of the optimiser's moments (its state is not touched), following
    torch's Adam exactly (no weight decay, no amsgrad): with step s+1,
    m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g^2,
    dtheta = -lr / (1 - b1^(s+1)) * m' / (sqrt(v') / sqrt(1 - b2^(s+1)) + eps).
    Parameters without a gradient get no entry.
    """
    out: dict[torch.nn.Parameter, torch.Tensor] = {}
    for group in optimizer.param_groups:
        if group.get("weight_decay", 0) or group.get("amsgrad", False):
            raise ValueError("adam_lookahead supports Adam without weight_decay or amsgrad")
        b1, b2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad
            state = optimizer.state.get(p, {})
            step = state.get("step", 0.0)
            if not isinstance(step, torch.Tensor) or step.device.type == "cpu":
                step = float(step)  # as torch's Adam does: bias corrections in float64
            # else a device tensor (fused/capturable Adam): stay there, no host sync
            step = step + 1
            m = state["exp_avg"] * b1 + g * (1 - b1) if "exp_avg" in state else g * (1 - b1)
            v = (
                state["exp_avg_sq"] * b2 + g * g * (1 - b2)
                if "exp_avg_sq" in state
                else g * g * (1 - b2)
            )
            bc1 = 1 - b1**step
            bc2_sqrt = (1 - b2**step) ** 0.5
            out[p] = -(lr / bc1) * m / (v.sqrt() / bc2_sqrt + eps)
    return out


def output_regularizer(
    hnet: HyperNetwork,
    embeddings: torch.Tensor,
    targets: torch.Tensor,
    delta: dict[torch.nn.Parameter, torch.Tensor] | None = None,
) -> torch.Tensor:
    """mean_j || h(e_j; theta + dtheta) - W*_j ||^2 in ONE batched hypernetwork forward.

    Args:
        hnet: the hypernetwork (theta = its parameters).
        embeddings: earlier tasks' embeddings [T, E].
        targets: the weights stored for them at task start, flat [T, n_target].
        delta: look-ahead dtheta per parameter (detached), or None to evaluate at theta.
    """
    if delta:
        params = {n: p + delta[p] if p in delta else p for n, p in hnet.named_parameters()}
        out = functional_call(hnet, params, (embeddings,), {"flat": True})
    else:
        out = hnet(embeddings, flat=True)
    return (out - targets).pow(2).sum(dim=1).mean()
