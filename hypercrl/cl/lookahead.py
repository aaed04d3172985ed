"""The Adam look-ahead theta + dtheta at which HyperCRL evaluates its regulariser.

dtheta is the change the optimiser's next ``step()`` would make with the current gradients
(the task-loss gradient alone), computed from its moments without touching its state. For a
hypernetwork whose output head holds millions of parameters the step is bound by passes over
memory, not arithmetic, so the shifted parameters theta + dtheta are written in ONE pass per
tensor by a kernel that torch.compile fuses (reads theta, g, m, v; writes theta + dtheta and
the squared norm of dtheta), and the regulariser then runs on those buffers: theta itself is
never shifted and restored. Where compiling is unavailable or does not pay (small networks,
``HYPERCRL_COMPILE=0``) the same formula runs as eager foreach kernels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger("hypercrl")

# compile the shift kernel for parameter groups at least this large (a compile costs seconds
# once per process and shape set; below this the eager kernels take well under a millisecond)
COMPILE_MIN_PARAMS = 500_000


def _adam_state(optimizer: torch.optim.Adam, group: dict, params: list[torch.Tensor]):
    """(step + 1, first moments, second moments) of ``params``; zeros where a parameter has
    no state yet (its first step)."""
    if group.get("weight_decay", 0) or group.get("amsgrad", False):
        raise ValueError("adam_lookahead supports Adam without weight_decay or amsgrad")
    states = [optimizer.state.get(p, {}) for p in params]
    step = states[0].get("step", 0.0)
    if not isinstance(step, torch.Tensor) or step.device.type == "cpu":
        step = float(step)  # as torch's Adam does: bias corrections in float64
    # else a device tensor (fused/capturable Adam): stay there, no host sync
    ms = [st["exp_avg"] if "exp_avg" in st else torch.zeros_like(p)
          for st, p in zip(states, params, strict=True)]
    vs = [st["exp_avg_sq"] if "exp_avg_sq" in st else torch.zeros_like(p)
          for st, p in zip(states, params, strict=True)]
    return step + 1, ms, vs


@torch.no_grad()
def adam_lookahead(
    optimizer: torch.optim.Adam,
    workspace: LookaheadWorkspace | None = None,
    only: list[torch.nn.Parameter] | None = None,
) -> dict[torch.nn.Parameter, torch.Tensor]:
    """The parameter change the next ``optimizer.step()`` would make with the current grads.

    Follows torch's Adam exactly (no weight decay, no amsgrad): with step s+1,
    m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g^2,
    dtheta = -lr / (1 - b1^(s+1)) * m' / (sqrt(v') / sqrt(1 - b2^(s+1)) + eps).
    One foreach kernel per operation over all parameters. Parameters without a gradient get
    no entry; with ``only``, neither do parameters outside it. With a ``workspace`` the
    result lives in its preallocated buffers (valid until the next call), so no large tensor
    is allocated per step.
    """
    out: dict[torch.nn.Parameter, torch.Tensor] = {}
    keep = None if only is None else {id(p) for p in only}
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.grad is not None
                  and (keep is None or id(p) in keep)]
        if params:
            buffers = workspace.buffers(params) if workspace is not None else None
            out.update(zip(params, _eager_delta(optimizer, group, params, buffers), strict=True))
    return out


def _eager_delta(optimizer, group, params, buffers=None):
    """dtheta of ``params`` as foreach kernels; in ``buffers`` (delta, scratch) if given."""
    b1, b2 = group["betas"]
    lr, eps = group["lr"], group["eps"]
    grads = [p.grad for p in params]
    step, ms, vs = _adam_state(optimizer, group, params)
    if buffers is None:
        m_new = torch._foreach_lerp(ms, grads, 1 - b1)  # b1 m + (1 - b1) g
        denom = torch._foreach_mul(grads, grads)
    else:
        m_new, denom = buffers
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
    return m_new


class LookaheadWorkspace:
    """Preallocated buffers for the look-ahead: a tensor per parameter per role.

    For a hypernetwork of tens of millions of parameters, allocating the look-ahead's
    temporaries afresh at every step costs more (page faults, zeroing) than the arithmetic.
    """

    def __init__(self) -> None:
        self._bufs: dict[torch.nn.Parameter, list[torch.Tensor]] = {}

    def _get(self, p: torch.nn.Parameter) -> list[torch.Tensor]:
        if p not in self._bufs:
            self._bufs[p] = [torch.empty_like(p, requires_grad=False) for _ in range(2)]
        return self._bufs[p]

    def buffers(self, params: list[torch.nn.Parameter]):
        """(dtheta or theta + dtheta buffers, scratch buffers) for ``params``."""
        bufs = [self._get(p) for p in params]
        return [b[0] for b in bufs], [b[1] for b in bufs]


def adam_update(m: torch.Tensor, v: torch.Tensor, g: torch.Tensor, coef: torch.Tensor):
    """torch's Adam formula for gradient ``g``: (m', v', dtheta), with ``coef`` = (1 - b1, b2,
    1 / sqrt(1 - b2^s), eps, -lr / (1 - b1^s)) from :func:`adam_coefficients`. The compiled
    kernels (this module's shift, the rank-one head step) share it."""
    m_new = torch.lerp(m, g, coef[0])
    v_new = torch.lerp(g * g, v, coef[1])  # (1 - b2) g^2 + b2 v
    return m_new, v_new, m_new / (v_new.sqrt() * coef[2] + coef[3]) * coef[4]


def _shift_kernel(outs: list[torch.Tensor], params: list[torch.Tensor],
                  grads: list[torch.Tensor], ms: list[torch.Tensor], vs: list[torch.Tensor],
                  coef: torch.Tensor, measure: bool) -> torch.Tensor | None:
    """outs[i] = params[i] + dtheta_i (torch's Adam formula); returns sum of dtheta^2 where
    ``measure``, else None (the sum feeds a logged statistic only; its work is skipped).

    ``coef`` is a tensor, so that the compiled kernel serves every step without recompiling;
    ``measure`` is a constant, so that it is compiled once for each value."""
    total = coef.new_zeros(()) if measure else None
    for out, p, g, m, v in zip(outs, params, grads, ms, vs, strict=True):
        _, _, d = adam_update(m, v, g, coef)
        out.copy_(p + d)
        if total is not None:
            total = total + (d * d).sum()
    return total


_compiled: dict[str, Callable | None] = {}


def compile_wanted(numel: int) -> bool:
    """Whether to run the shift through torch.compile: ``HYPERCRL_COMPILE`` = 1 (always),
    0 (never) or auto/unset (for groups of at least COMPILE_MIN_PARAMS parameters)."""
    mode = os.environ.get("HYPERCRL_COMPILE", "auto").strip().lower()
    if mode in ("0", "false", "no", "off"):
        return False
    if mode in ("1", "true", "yes", "on"):
        return True
    if mode != "auto":
        raise ValueError(f"HYPERCRL_COMPILE must be 0, 1 or auto, got {mode!r}")
    return numel >= COMPILE_MIN_PARAMS


def compiled(name: str, fn: Callable) -> Callable | None:
    """``fn`` through torch.compile, built once per process under ``name``; None once
    compiling it has failed (:func:`compile_failed`)."""
    if name not in _compiled:
        _compiled[name] = torch.compile(fn, dynamic=False)
    return _compiled[name]


def compile_failed(name: str, what: str, instead: str, err: Exception) -> None:
    """Say once that compiling ``what`` failed and what runs ``instead``; never try again."""
    log.warning("torch.compile of %s failed (%s: %s); %s (set HYPERCRL_COMPILE=0 to skip the "
                "attempt)", what, type(err).__name__,
                str(err).splitlines()[0] if str(err) else "", instead)
    _compiled[name] = None


def call_compiled(name: str, fn: Callable, what: str, instead: str, *args) -> tuple[bool, Any]:
    """(True, ``fn(*args)`` run by its compiled kernel, :func:`compiled`), or (False, None)
    where compiling ``what`` has failed, now (said once, with what runs ``instead``:
    :func:`compile_failed`) or before; the caller then runs its fallback."""
    kernel = compiled(name, fn)
    if kernel is None:
        return False, None
    try:
        return True, kernel(*args)
    except Exception as err:  # no C++ compiler, an unsupported platform, ...
        compile_failed(name, what, instead, err)
        return False, None


def param_group(optimizer: torch.optim.Adam, param: torch.Tensor) -> dict:
    """The parameter group of ``optimizer`` that holds ``param``."""
    return next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))


def adam_coefficients(optimizer: torch.optim.Adam, group: dict, params: list[torch.Tensor]):
    """(first moments, second moments, coef) for the next step of ``params`` (all in
    ``group``): the coefficients :func:`adam_update` takes, as a tensor on the parameters'
    device (fused Adam keeps its step count there)."""
    step, ms, vs = _adam_state(optimizer, group, params)
    b1, b2 = group["betas"]
    coef = torch.stack([torch.as_tensor(c, dtype=torch.float64, device=params[0].device)
                        for c in (1 - b1, b2, 1 / (1 - b2**step) ** 0.5, group["eps"],
                                  -group["lr"] / (1 - b1**step))]).to(params[0].dtype)
    return ms, vs, coef


@torch.no_grad()
def adam_shifted(
    optimizer: torch.optim.Adam, params: list[torch.nn.Parameter], workspace: LookaheadWorkspace,
    measure: bool = True,
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """theta + dtheta for ``params`` (all in one param group of ``optimizer``, all with a
    gradient), in the workspace's buffers, and ||dtheta||^2 over them (None unless
    ``measure``).

    The buffers are valid until the next call. Compiled (one fused pass per tensor) where
    :func:`compile_wanted` says so and the optimiser already holds moments; eager otherwise.
    """
    group = param_group(optimizer, params[0])
    outs, scratch = workspace.buffers(params)
    has_state = all(p in optimizer.state and "exp_avg" in optimizer.state[p] for p in params)
    if has_state and compile_wanted(sum(p.numel() for p in params)):
        ms, vs, coef = adam_coefficients(optimizer, group, params)
        done, sq = call_compiled("kernel", _shift_kernel, "the look-ahead", "using eager kernels",
                                 outs, list(params), [p.grad for p in params], ms, vs, coef,
                                 measure)
        if done:
            return outs, sq
    delta = _eager_delta(optimizer, group, params, (outs, scratch))
    sq = torch.stack(torch._foreach_norm(delta)).pow(2).sum() if measure else None
    torch._foreach_add_(delta, params)  # the delta buffers become theta + dtheta
    return delta, sq

