"""HyperCRL's output regulariser and the Adam look-ahead it is evaluated at.

L_reg = (1/T) sum_{j<T} || W*_j - h(e_j + de_j; theta + dtheta) ||^2 (reference §3.2), where
dtheta (and, for plastic earlier embeddings, de_j) is the change the real Adam step would
make with the task-loss gradient alone, detached.
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from hypercrl.cl.lookahead import LookaheadWorkspace, adam_lookahead, adam_shifted
from hypercrl.hnet.base import HyperNetwork

__all__ = ["LookaheadWorkspace", "adam_lookahead", "adam_shifted", "output_regularizer",
           "regularizer_backward"]


def regularizer_backward(
    hnet: HyperNetwork,
    embeddings: torch.Tensor,
    targets: torch.Tensor,
    shifted: dict[torch.nn.Parameter, torch.Tensor],
    scale: float,
    emb_delta: torch.Tensor | None = None,
    recorded: torch.nn.Parameter | None = None,
) -> torch.Tensor:
    """Backward of ``scale * output_regularizer(...)`` evaluated at the given parameter values.

    ``shifted`` maps hypernetwork parameters to their values theta + dtheta (e.g. from
    :func:`adam_shifted`; parameters not in it are used as they are). The regulariser runs on
    those tensors as stand-ins for the parameters, and its gradient at theta + dtheta
    accumulates straight into each parameter's ``.grad`` (the stand-in shares it), so theta
    is neither copied nor modified. The embeddings (tiny) are shifted functionally,
    e_j + de_j, so a gradient reaches them at the shifted point where they require one.
    ``recorded``: a parameter without a ``.grad`` whose gradient the hypernetwork's head
    recorder keeps as factors (:mod:`hypercrl.cl.rank_one`); whatever reaches it outside the
    recorder becomes its ``.grad``. Returns the regulariser's value (detached).
    """
    stand_ins: dict[str, torch.Tensor] = {}
    shared: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
    recorded_leaf = None
    for name, p in hnet.named_parameters():
        if p not in shifted:
            stand_ins[name] = p
            continue
        leaf = shifted[p].detach().requires_grad_(p.requires_grad)
        if p is recorded:
            recorded_leaf = leaf
        elif p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            leaf.grad = p.grad  # backward accumulates into it in place: into p.grad
            shared.append((p, leaf))
        stand_ins[name] = leaf
    if emb_delta is not None:
        embeddings = embeddings + emb_delta
    try:
        out = functional_call(hnet, stand_ins, (embeddings,), {"flat": True})
        reg = (out - targets).pow(2).sum(dim=1).mean()
        (scale * reg).backward()
    finally:
        for p, leaf in shared:
            if leaf.grad is not p.grad:  # accumulation made a new tensor (it should not)
                p.grad = leaf.grad
            leaf.grad = None
        if recorded_leaf is not None and recorded_leaf.grad is not None:
            recorded.grad = recorded_leaf.grad
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
