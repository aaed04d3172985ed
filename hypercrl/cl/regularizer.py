"""HyperCRL's output regulariser and the Adam look-ahead it is evaluated at.

L_reg = (1/T) sum_{j<T} || W*_j - h(e_j + de_j; theta + dtheta) ||^2 (reference §3.2), where
dtheta (and, for plastic earlier embeddings, de_j) is the change the real Adam step would
make with the task-loss gradient alone, detached.
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from hypercrl.hnet.base import HyperNetwork


@torch.no_grad()
def adam_lookahead(
    optimizer: torch.optim.Adam, workspace: LookaheadWorkspace | None = None
) -> dict[torch.nn.Parameter, torch.Tensor]:
    """The parameter change the next ``optimizer.step()`` would make with the current grads.

    Computed from the optimiser's moments without touching its state, following torch's Adam
    exactly (no weight decay, no amsgrad): with step s+1,
    m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g^2,
    dtheta = -lr / (1 - b1^(s+1)) * m' / (sqrt(v') / sqrt(1 - b2^(s+1)) + eps).
    One foreach kernel per operation over all parameters. Parameters without a gradient get
    no entry. With a ``workspace`` the result lives in its preallocated buffers (valid until
    the next call), so no large tensor is allocated per step.
    """
    out: dict[torch.nn.Parameter, torch.Tensor] = {}
    for group in optimizer.param_groups:
        if group.get("weight_decay", 0) or group.get("amsgrad", False):
            raise ValueError("adam_lookahead supports Adam without weight_decay or amsgrad")
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        b1, b2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        grads = [p.grad for p in params]
        states = [optimizer.state.get(p, {}) for p in params]
        step = states[0].get("step", 0.0)
        if not isinstance(step, torch.Tensor) or step.device.type == "cpu":
            step = float(step)  # as torch's Adam does: bias corrections in float64
        # else a device tensor (fused/capturable Adam): stay there, no host sync
        step = step + 1
        ms = [st["exp_avg"] if "exp_avg" in st else torch.zeros_like(g)
              for st, g in zip(states, grads, strict=True)]
        vs = [st["exp_avg_sq"] if "exp_avg_sq" in st else torch.zeros_like(g)
              for st, g in zip(states, grads, strict=True)]
        if workspace is None:
            m_new = torch._foreach_lerp(ms, grads, 1 - b1)  # b1 m + (1 - b1) g
            denom = torch._foreach_mul(grads, grads)
        else:
            m_new, denom = workspace.buffers(params)
            torch._foreach_copy_(m_new, ms)
            torch._foreach_lerp_(m_new, grads, 1 - b1)
            torch._foreach_copy_(denom, grads)
            torch._foreach_mul_(denom, grads)
        torch._foreach_lerp_(denom, vs, b2)  # (1 - b2) g^2 + b2 v
        torch._foreach_sqrt_(denom)
        torch._foreach_div_(denom, (1 - b2**step) ** 0.5)
        torch._foreach_add_(denom, eps)
        torch._foreach_div_(m_new, denom)
        torch._foreach_mul_(m_new, -lr / (1 - b1**step))
        out.update(zip(params, m_new, strict=True))
    return out


class LookaheadWorkspace:
    """Preallocated buffers for :func:`adam_lookahead` and :func:`regularizer_backward`.

    For a hypernetwork of tens of millions of parameters, allocating the look-ahead's
    temporaries afresh at every step costs more (page faults, zeroing) than the arithmetic.
    """

    def __init__(self) -> None:
        self._bufs: dict[torch.nn.Parameter, list[torch.Tensor]] = {}

    def _get(self, p: torch.nn.Parameter) -> list[torch.Tensor]:
        if p not in self._bufs:
            self._bufs[p] = [torch.empty_like(p) for _ in range(3)]
        return self._bufs[p]

    def buffers(self, params: list[torch.nn.Parameter]):
        """(dtheta buffers, scratch buffers) for ``params``."""
        bufs = [self._get(p) for p in params]
        return [b[0] for b in bufs], [b[1] for b in bufs]

    def backups(self, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
        return [self._get(p)[2] for p in params]


def regularizer_backward(
    hnet: HyperNetwork,
    embeddings: torch.Tensor,
    targets: torch.Tensor,
    delta: dict[torch.nn.Parameter, torch.Tensor],
    scale: float,
    workspace: LookaheadWorkspace,
    emb_delta: torch.Tensor | None = None,
) -> torch.Tensor:
    """Backward of ``scale * output_regularizer(hnet, embeddings, targets, delta, emb_delta)``.

    Same value and gradients as the functional form, without materialising theta + dtheta
    as new tensors: the parameters are shifted by dtheta in place, the regulariser is
    evaluated and back-propagated (its gradient at theta + dtheta accumulates into
    ``p.grad``), and the parameters are restored bit for bit from a backup. The embeddings
    (tiny) are shifted functionally, e_j + de_j, so a gradient reaches them at the shifted
    point where they require one. Returns the regulariser's value (detached).
    """
    params = [p for p in hnet.parameters() if p in delta]
    backup = workspace.backups(params)
    with torch.no_grad():
        torch._foreach_copy_(backup, params)
        torch._foreach_add_(params, [delta[p] for p in params])
    if emb_delta is not None:
        embeddings = embeddings + emb_delta
    try:
        reg = (hnet(embeddings, flat=True) - targets).pow(2).sum(dim=1).mean()
        (scale * reg).backward()
    finally:
        with torch.no_grad():
            torch._foreach_copy_(params, backup)
    return reg.detach()


def output_regularizer(
    hnet: HyperNetwork,
    embeddings: torch.Tensor,
    targets: torch.Tensor,
    delta: dict[torch.nn.Parameter, torch.Tensor] | None = None,
    emb_delta: torch.Tensor | None = None,
) -> torch.Tensor:
    """mean_j || h(e_j + de_j; theta + dtheta) - W*_j ||^2 in ONE batched hypernetwork forward.

    Args:
        hnet: the hypernetwork (theta = its parameters).
        embeddings: earlier tasks' embeddings [T, E].
        targets: the weights stored for them at task start, flat [T, n_target].
        delta: look-ahead dtheta per parameter (detached), or None to evaluate at theta.
        emb_delta: look-ahead de_j of the embeddings [T, E] (detached), or None (de_j = 0).
    """
    if emb_delta is not None:
        embeddings = embeddings + emb_delta
    if delta:
        params = {n: p + delta[p] if p in delta else p for n, p in hnet.named_parameters()}
        out = functional_call(hnet, params, (embeddings,), {"flat": True})
    else:
        out = hnet(embeddings, flat=True)
    return (out - targets).pow(2).sum(dim=1).mean()
