"""The hypernetwork head's gradient kept as factors: Adam and its look-ahead without it in memory.

A hypernetwork generates the target weights from ONE task embedding, so a step's task loss
reaches the head's weight W [n_target, k] through one row: out = W f + b, and its gradient
is the outer product g f^T of the loss's gradient at the output g [n_target] and the trunk's
features f [k]. Autograd writes that product out (140 MB at door size), the gradient clip
reads it for its norm and Adam reads it again. Here the head records (g, f) instead
(:class:`HeadRecorder`), and:

- a step without the regulariser (all of a task 0, the steps between with ``reg_every``)
  counts the head in the clip's norm as |g| |f| and takes its Adam step in one fused pass
  (torch.compile) that forms each gradient entry where Adam needs it (:func:`adam_step_`):
  it reads W and the two moments and writes them back. On a door-size head this halves the
  step;
- a regularised step forms the look-ahead theta + dtheta of the head from (g, f) in one
  fused pass (:func:`shifted`), records one more row per earlier task from the regulariser's
  backward at that point, counts the rows' norm from their Gram matrices
  (:func:`factored_norm`), and writes the gradient out once, as one matrix product of all
  rows, for the optimiser's step. Autograd would write the task row, accumulate the
  regulariser's rows into it, and the clip would read and scale it: a door-size regularised
  step takes about 0.8x its time.

The update is torch's Adam formula (the look-ahead's, :mod:`hypercrl.cl.lookahead`), equal to
torch's step to float32 rounding; where compiling is off (``HYPERCRL_COMPILE``, small heads)
or fails, the recorded factors become the gradient autograd would have written, and torch's
Adam steps as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hypercrl.cl.lookahead import (
    _compiled,
    adam_coefficients,
    adam_update,
    call_compiled,
    compile_wanted,
    param_group,
)

KERNEL = "adam"  # the compiled kernels' names in lookahead's registry
SHIFT_KERNEL, MOVED_KERNEL = "shift_rank_one", "moved"


class HeadRecorder:
    """Collects the head's factors during a backward pass: the output gradients [R, n] and
    the features [R, k] whose product ``G^T F`` is the head weight's gradient."""

    def __init__(self) -> None:
        self.grads: list[torch.Tensor] = []
        self.features: list[torch.Tensor] = []

    def linear(self, feats: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        """``F.linear(feats, weight, bias)`` whose backward records the factors and leaves
        ``weight.grad`` untouched."""
        return _RecordedLinear.apply(feats, weight, bias, self)

    @property
    def recorded(self) -> bool:
        return bool(self.grads)

    def rank_one(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(g [n], f [k]) when everything recorded is one row, else None."""
        if len(self.grads) != 1 or self.grads[0].shape[0] != 1:
            return None
        return self.grads[0][0], self.features[0][0]

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every row recorded: (G [R, n], F [R, k]), the weight gradient being ``G^T F``."""
        return torch.cat(self.grads), torch.cat(self.features)

    def gradient(self) -> torch.Tensor:
        """The weight gradient as autograd computes it (``G^T F``, one mm per record)."""
        total = None
        for g, f in zip(self.grads, self.features, strict=True):
            part = g.t().mm(f)
            total = part if total is None else total.add_(part)
        return total


class _RecordedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats, weight, bias, recorder):
        ctx.save_for_backward(feats, weight)
        ctx.recorder = recorder
        ctx.has_bias = bias is not None
        return F.linear(feats, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        feats, weight = ctx.saved_tensors
        ctx.recorder.grads.append(grad_out.detach())
        ctx.recorder.features.append(feats.detach())
        grad_feats = grad_out.mm(weight) if ctx.needs_input_grad[0] else None
        grad_bias = grad_out.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_feats, None, grad_bias, None


def _adam_kernel(param: torch.Tensor, m: torch.Tensor, v: torch.Tensor, g_out: torch.Tensor,
                 feats: torch.Tensor, coef: torch.Tensor) -> None:
    """Adam's update of ``param`` for the gradient ``g_out feats^T``, in place (``coef`` as
    :func:`~hypercrl.cl.lookahead.adam_update` takes it). Scaling ``g_out`` inside the
    kernel by a sixth coefficient made Inductor's loop 3-4x slower on the CPU: the caller
    scales it."""
    m_new, v_new, d = adam_update(m, v, g_out[:, None] * feats[None, :], coef)
    m.copy_(m_new)
    v.copy_(v_new)
    param.copy_(param + d)


def _shift_kernel(out: torch.Tensor, param: torch.Tensor, m: torch.Tensor, v: torch.Tensor,
                  g_out: torch.Tensor, feats: torch.Tensor, coef: torch.Tensor) -> None:
    """``out = param + dtheta`` for the gradient ``g_out feats^T`` (the look-ahead's formula,
    :func:`~hypercrl.cl.lookahead.adam_shifted`). Summing dtheta^2 in the same loop made
    Inductor's CPU code 1.6-1.9x slower (pusher and door heads): :func:`moved` sums it, on
    the steps that log it."""
    _, _, d = adam_update(m, v, g_out[:, None] * feats[None, :], coef)
    out.copy_(param + d)


def _moved(out: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """The sum of (out - param)^2: ||dtheta||^2 of a shift."""
    return (out - param).pow(2).sum()


def factored_norm(g_out: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """The Frobenius norm of ``g_out^T feats`` ([R, n] and [R, k], or one row as [n] and [k])
    without forming it: |g| |f| for one row, else sqrt(sum((G G^T) * (F F^T)))."""
    if g_out.dim() == 1:
        return torch.linalg.vector_norm(g_out) * torch.linalg.vector_norm(feats)
    return ((g_out @ g_out.t()) * (feats @ feats.t())).sum().clamp_min(0).sqrt()


def wanted(optimizer: torch.optim.Adam, param: torch.nn.Parameter) -> bool:
    """Whether ``param``'s gradient should be kept as factors (its Adam step rank-one, its
    look-ahead from them where a regulariser runs): compiling is wanted for its size, has not
    failed in this process, and the optimiser already holds its moments (a task's first
    step creates them the usual way)."""
    if _compiled.get(KERNEL, True) is None or not compile_wanted(param.numel()):
        return False
    state = optimizer.state.get(param, {})
    return "exp_avg" in state and "exp_avg_sq" in state


@torch.no_grad()
def adam_step_(optimizer: torch.optim.Adam, param: torch.nn.Parameter, g_out: torch.Tensor,
               feats: torch.Tensor, scale: float | torch.Tensor = 1.0) -> bool:
    """One Adam step of ``param`` for the gradient ``scale * g_out feats^T``, in place,
    advancing its state as ``optimizer.step()`` would. Returns False (nothing changed) where
    the compiled kernel is unavailable; the caller then steps with a written-out gradient."""
    (m,), (v,), coef = adam_coefficients(optimizer, param_group(optimizer, param), [param])
    if not (isinstance(scale, float) and scale == 1.0):
        g_out = g_out * scale  # the clip's factor (n entries, not n * k)
    done, _ = call_compiled(KERNEL, _adam_kernel, "the rank-one Adam step",
                            "writing the gradient out instead", param, m, v, g_out, feats, coef)
    if done:
        optimizer.state[param]["step"] += 1
    return done


@torch.no_grad()
def shifted(optimizer: torch.optim.Adam, param: torch.nn.Parameter, g_out: torch.Tensor,
            feats: torch.Tensor, out: torch.Tensor) -> bool:
    """The Adam look-ahead of ``param`` for the gradient ``g_out feats^T``: ``out`` becomes
    theta + dtheta, in one fused pass that never forms the gradient. Returns False where the
    compiled kernel is unavailable (the caller then writes the gradient out and shifts as
    before, into the same buffer)."""
    (m,), (v,), coef = adam_coefficients(optimizer, param_group(optimizer, param), [param])
    done, _ = call_compiled(SHIFT_KERNEL, _shift_kernel, "the rank-one look-ahead",
                            "writing the gradient out instead", out, param, m, v, g_out, feats,
                            coef)
    return done


@torch.no_grad()
def moved(out: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """||out - param||^2, the squared length of a shift :func:`shifted` made: one compiled
    pass over both (eager where compiling fails)."""
    done, total = call_compiled(MOVED_KERNEL, _moved, "the look-ahead's length",
                                "summing it eagerly", out, param)
    return total if done else _moved(out, param)
