"""Fast next-state prediction for one task, with its generated weights cached.

The planner calls a predictor tens of thousands of times per env step, so the weights are
prepared once: input standardisation is folded into the first layer, target
de-standardisation into the last, and only the mean head of a probabilistic net is kept.
``rollout`` computes the actions' share of the first layer for the whole horizon in one
matmul; each of the H sequential steps then costs one matmul per layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hypercrl.model.normalizer import Normalizer
from hypercrl.model.spec import StateSpec
from hypercrl.model.target import TargetNet

_INPLACE = {
    "relu": torch.relu_,
    "elu": F.elu_,
    "tanh": torch.tanh_,
    "silu": lambda x: F.silu(x, inplace=True),
    "leaky_relu": F.leaky_relu_,
}


CLIP_MARGIN = 0.1  # of a dimension's visited range, added on each side when clipping


def state_bounds(spec: StateSpec, normalizer: Normalizer) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) ``[S]`` each: the range of states ``normalizer``'s task visited, widened by
    :data:`CLIP_MARGIN` of it on each side. Free (-inf, inf): quaternion entries, an angle
    whose visited range spans pi or more (it may have wrapped around), and any dimension
    whose range was never recorded."""
    return widened_range(spec, normalizer.s_low, normalizer.s_high)


def widened_range(spec: StateSpec, low: torch.Tensor, high: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`state_bounds` of a visited range ``low``, ``high`` [S]."""
    low, high = torch.as_tensor(low).clone(), torch.as_tensor(high).clone()
    margin = CLIP_MARGIN * (high - low)
    free = ~torch.isfinite(margin)
    angles = torch.zeros_like(free)
    angles[list(spec.angle_idx)] = True
    free |= angles & (high - low >= math.pi)
    free[[q + i for q in spec.quat_blocks for i in range(4)]] = True
    low = torch.where(free, torch.full_like(low, -math.inf), low - margin)
    high = torch.where(free, torch.full_like(high, math.inf), high + margin)
    return low, high


class Predictor:
    """next_state = f(state, action) for one task.

    Args:
        net: the target architecture (its layer structure and activation are used).
        weights: that task's weights, name -> tensor of the net's shapes (detached here).
        spec: how state dimensions are fed and predicted.
        normalizer: the task's input/target statistics.
        clip: keep every predicted state inside the range the task's data visited (the
            normaliser's ``s_low``/``s_high``), widened by :data:`CLIP_MARGIN` of it on each
            side (quaternions, and angles that may have wrapped, are left free). Off (the
            original): a rollout may leave the data, where the model's predictions mean
            nothing and a planner can find returns no real trajectory has.
    """

    def __init__(
        self,
        net: TargetNet,
        weights: dict[str, torch.Tensor],
        spec: StateSpec,
        normalizer: Normalizer,
        clip: bool = False,
    ) -> None:
        self.spec = spec
        self.state_dim = spec.state_dim
        self.action_dim = net.in_dim - spec.feature_dim
        self._act = _INPLACE[net.activation_name]
        with torch.no_grad():
            n = len(net.layers)
            ws = [weights[f"layers.{i}.weight"].detach() for i in range(n)]
            bs = [weights[f"layers.{i}.bias"].detach() for i in range(n)]
            # fold (x - mean) / std into layer 1
            w1 = ws[0] / normalizer.x_std
            b1 = bs[0] - w1 @ normalizer.x_mean
            f = spec.feature_dim
            # weights stay [out, in] and reach addmm as .t() views, as in F.linear: on CPU,
            # BLAS is about 2x faster that way for thin outputs such as the 10-wide last layer
            self.w_state_t = w1[:, :f].contiguous().t()  # [F, h1], a view
            self.w_action_t = w1[:, f:].contiguous().t()  # [A, h1], a view
            self.b1 = b1.contiguous()
            # keep the mean head only, and fold y * std + mean into it
            wl = ws[-1][: net.out_dim] * normalizer.y_std[:, None]
            bl = bs[-1][: net.out_dim] * normalizer.y_std + normalizer.y_mean
            pairs = zip(ws[1:-1], bs[1:-1], strict=True)
            self.hidden = [(w.contiguous().t(), b.contiguous()) for w, b in pairs]
            self.last = (wl.contiguous().t(), bl.contiguous())
        self.device = self.b1.device
        self.dtype = self.b1.dtype
        self.bounds = None
        if clip:
            low, high = state_bounds(spec, normalizer)
            self.bounds = (low.to(self.device, self.dtype), high.to(self.device, self.dtype))

    def _clip(self, s: torch.Tensor) -> torch.Tensor:
        """``s`` clamped in place to the task's range (a no-op without ``clip``)."""
        if self.bounds is not None:
            s.clamp_(*self.bounds)
        return s

    def _tail(self, z: torch.Tensor) -> torch.Tensor:
        """Hidden pre-activation of layer 1 [P, h1] -> prediction in target space [P, S]."""
        z = self._act(z)
        for w_t, b in self.hidden:
            z = self._act(torch.addmm(b, z, w_t))
        w_t, b = self.last
        return torch.addmm(b, z, w_t)

    @torch.no_grad()
    def __call__(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """state [P, S], action [P, A] -> next state [P, S]."""
        z = torch.addmm(self.b1, self.spec.features(state), self.w_state_t)
        z.addmm_(action, self.w_action_t)
        return self._clip(self.spec.apply(state, self._tail(z)))

    @torch.no_grad()
    def rollout(self, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Predicted next states [P, H, S] for start state [S] or [P, S] and actions [P, H, A].

        The result is a view of an [H, P, S] buffer (not contiguous).
        """
        p, h, a = actions.shape
        out = torch.empty(h, p, self.state_dim, device=actions.device, dtype=actions.dtype)
        s = state.expand(p, self.state_dim)
        # On a GPU the actions' share of layer 1 for all H steps in one matmul saves launches;
        # on a CPU its [H * P, h1] result falls out of cache and a rank-A update per step wins.
        whole_horizon = actions.device.type != "cpu"
        if whole_horizon:
            flat = actions.transpose(0, 1).reshape(h * p, a)
            act_in = torch.addmm(self.b1, flat, self.w_action_t).view(h, p, -1)
        for t in range(h):
            if whole_horizon:
                z = torch.addmm(act_in[t], self.spec.features(s), self.w_state_t)
            else:
                z = torch.addmm(self.b1, self.spec.features(s), self.w_state_t)
                z.addmm_(actions[:, t], self.w_action_t)
            pred = self._tail(z)
            if self.spec.all_delta:
                s = self._clip(torch.add(s, pred, out=out[t]))
            else:
                out[t] = self.spec.apply(s, pred)
                s = self._clip(out[t])
        return out.transpose(0, 1)


PROPAGATIONS = ("ts1", "tsinf")


class EnsemblePredictor:
    """An ensemble's next-state prediction for one task: one :class:`Predictor` per member.

    ``__call__`` predicts the members' mean. ``rollout`` rolls every action sequence out once
    per member (particles, PETS's trajectory sampling): rows ``m * P + p`` of its ``[M * P, H,
    S]`` result are sequence p's particle m. With ``propagation="ts1"`` particle m follows
    member m over the whole horizon; with ``"tsinf"`` each particle's member is drawn anew at
    every step (from a generator seeded alike at every call, so that planning is
    reproducible). The agent averages the particles' rewards per sequence and subtracts
    ``disagreement`` times the particles' spread (``spread``).

    Args:
        members: the members' predictors (same spec, device and dtype).
        propagation: "ts1" or "tsinf".
        disagreement: the planner's penalty weight (read by ``MPCAgent``).
    """

    def __init__(self, members: list[Predictor], propagation: str = "ts1",
                 disagreement: float = 0.0, seed: int = 0) -> None:
        if propagation not in PROPAGATIONS:
            raise ValueError(f"propagation must be one of {list(PROPAGATIONS)}, "
                             f"got {propagation!r}")
        self.members = members
        self.propagation, self.disagreement, self.seed = propagation, disagreement, seed
        first = members[0]
        self.spec, self.state_dim, self.action_dim = first.spec, first.state_dim, first.action_dim
        self.device, self.dtype = first.device, first.dtype
        self.particles = len(members)
        # a row's tsinf draws depend on its place in the rollout's batch: a planner that
        # scores several plans together rolls each one out on its own (plan_across)
        self.rows_independent = propagation == "ts1"

    @torch.no_grad()
    def __call__(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """state [P, S], action [P, A] -> the members' mean next state [P, S]."""
        return torch.stack([m(state, action) for m in self.members]).mean(0)

    @torch.no_grad()
    def rollout(self, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Start state [S] or [P, S], actions [P, H, A] -> particles' next states
        [M * P, H, S], member-major."""
        p, h, _ = actions.shape
        start = state.expand(p, self.state_dim)
        if self.propagation == "ts1":
            return torch.cat([m.rollout(start, actions) for m in self.members])
        k = self.particles
        gen = torch.Generator(device=actions.device).manual_seed(self.seed)
        out = torch.empty(h, k * p, self.state_dim, device=actions.device, dtype=actions.dtype)
        s = start.repeat(k, 1)
        acts = actions.repeat(k, 1, 1)
        for t in range(h):
            who = torch.randint(k, (k * p,), generator=gen, device=actions.device)
            for m, member in enumerate(self.members):
                rows = (who == m).nonzero().squeeze(1)
                out[t, rows] = member(s[rows], acts[rows, t])
            s = out[t]
        return out.transpose(0, 1)

