"""Adam on a rank-one gradient: the hypernetwork head's step without its gradient in memory.

A hypernetwork generates the target weights from ONE task embedding, so a step's task loss
reaches the head's weight W [n_target, k] through one row: out = W f + b, and its gradient
is the outer product g f^T of the loss's gradient at the output g [n_target] and the trunk's
features f [k]. Autograd writes that product out (140 MB at door size), the gradient clip
reads it for its norm and Adam reads it again. Here the head records (g, f) instead, the norm
is |g| |f|, and one fused pass (torch.compile) forms each gradient entry where Adam needs it:
it reads W and the two moments and writes them back, against autograd's write of the
gradient and Adam's seven passes. On a door-size head this halves the step.

It serves the steps that do not evaluate the regulariser (all of a task 0, and the steps
between with ``reg_every``); a regularised step's gradient has one row per earlier task,
for which writing the gradient out is as fast. The update is torch's Adam formula (the
look-ahead's, :mod:`hypercrl.cl.lookahead`), equal to torch's step to float32 rounding;
where compiling is off (``HYPERCRL_COMPILE``, small heads) or fails, the recorded factors
become the gradient autograd would have written, and torch's Adam steps as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hypercrl.cl.lookahead import (
    _compiled,
    adam_coefficients,
    adam_update,
    compile_failed,
    compile_wanted,
    compiled,
    param_group,
)

KERNEL = "adam"  # the compiled kernel's name in lookahead's registry


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


def wanted(optimizer: torch.optim.Adam, param: torch.nn.Parameter) -> bool:
    """Whether ``param``'s step should run rank-one: compiling is wanted for its size, has not
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
    kernel = compiled(KERNEL, _adam_kernel)
    if kernel is None:
        return False
    (m,), (v,), coef = adam_coefficients(optimizer, param_group(optimizer, param), [param])
    if not (isinstance(scale, float) and scale == 1.0):
        g_out = g_out * scale  # the clip's factor (n entries, not n * k)
    try:
        kernel(param, m, v, g_out, feats, coef)
    except Exception as err:  # no C++ compiler, an unsupported platform, ...
        compile_failed(KERNEL, "the rank-one Adam step", "writing the gradient out instead",
                       err)
        return False
    optimizer.state[param]["step"] += 1
    return True
