"""State spec: how each state dimension is fed to the model and predicted.

Kinds, one per state dimension (the strings of ``envs.sequences``, as plain data):

- ``delta``: target x' - x, prediction x + f;
- ``absolute``: target x', prediction f; not a model input, as in the original (reference
  §2.4: HalfCheetah's finite-difference vx is predicted outright and not fed back), unless
  ``StateSpec(..., absolute_inputs=True)`` (models saved before this rule fed it);
- ``angle``: fed as (cos x, sin x); target wrap(x' - x) in [-pi, pi); prediction x + f
  (not re-wrapped, so an unwrapped angle observation stays continuous);
- ``quat``: a block of four consecutive dims, a unit quaternion q = [w, x, y, z] (Hamilton
  product). Target dq = q' * conj(q), the original's (reference §2.4), with its sign chosen so
  that w >= 0 (the sign choice keeps targets continuous near the identity): dq is the turn in
  the frame q is expressed in (the door's handle frame), the frame the actions turn the hand
  in, so a commanded turn maps to nearly the same target whatever the hand's orientation.
  Prediction q' = normalize(dq * q), in the same order: the original predicted q * dq, a
  mismatch with its own targets that we do not replicate. (In the hand's own frame,
  conj(q) * q', the target is the commanded turn rotated by the hand's orientation: a plain
  MLP explained 24-39 % of its held-out variance on random door transitions, against
  docs/ENVIRONMENTS.md's figure for this form.) A predicted q' equals the observed one up to
  sign, which is the same rotation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

KINDS = ("delta", "absolute", "angle", "quat")


def quat_mul(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Hamilton product of [..., 4] quaternions in [w, x, y, z] order."""
    pw, px, py, pz = p.unbind(-1)
    qw, qx, qy, qz = q.unbind(-1)
    return torch.stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ],
        dim=-1,
    )


def quat_conj(q: torch.Tensor) -> torch.Tensor:
    """Conjugate of [..., 4] quaternions ([w, x, y, z])."""
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def wrap_angle(x: torch.Tensor) -> torch.Tensor:
    """Wrap radians into [-pi, pi)."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


class StateSpec:
    """Per-dimension prediction kinds of a state vector of size ``state_dim``."""

    def __init__(self, kinds: Sequence[str], absolute_inputs: bool = False) -> None:
        kinds = tuple(kinds)
        bad = sorted({k for k in kinds if k not in KINDS})
        if bad:
            raise ValueError(f"state spec has unknown kinds {bad}; valid: {list(KINDS)}")
        if not kinds:
            raise ValueError("state spec is empty")
        self.kinds = kinds
        self.state_dim = len(kinds)
        idx = {k: [i for i, kk in enumerate(kinds) if kk == k] for k in KINDS}
        self.quat_blocks = self._quat_blocks(idx["quat"])
        self.angle_idx = idx["angle"]
        self.absolute_idx = idx["absolute"]
        self.absolute_inputs = bool(absolute_inputs)
        # the state dims fed to the model as they are: all but the angles (fed as cos, sin)
        # and, unless absolute_inputs, the absolute ones
        skipped = ("angle",) if self.absolute_inputs else ("angle", "absolute")
        self.plain_idx = [i for i, k in enumerate(kinds) if k not in skipped]
        self.feature_dim = len(self.plain_idx) + 2 * len(self.angle_idx)
        self._features_are_state = self.plain_idx == list(range(self.state_dim))
        self.all_delta = all(k == "delta" for k in kinds)

    @staticmethod
    def _quat_blocks(idx: list[int]) -> list[int]:
        if len(idx) % 4:
            raise ValueError(f"quat dims come in blocks of 4; got {len(idx)} quat dims")
        starts = idx[::4]
        for s in starts:
            if idx[idx.index(s) : idx.index(s) + 4] != [s, s + 1, s + 2, s + 3]:
                raise ValueError(f"quat dims must be 4 consecutive indices; block at {s} is not")
        return starts

    def features(self, state: torch.Tensor) -> torch.Tensor:
        """Model input features [..., feature_dim]: the plain input dims (neither angles nor,
        unless ``absolute_inputs``, absolute dims), then cos and sin of the angles."""
        if self._features_are_state:
            return state
        ang = state[..., self.angle_idx]
        return torch.cat([state[..., self.plain_idx], torch.cos(ang), torch.sin(ang)], dim=-1)

    def states_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """The states [..., state_dim] whose :meth:`features` are ``features``; an angle comes
        back wrapped to (-pi, pi], and a dim that is not an input (an absolute one, unless
        ``absolute_inputs``) as 0: the model never reads it."""
        if self._features_are_state:
            return features
        n, k = len(self.plain_idx), len(self.angle_idx)
        state = features.new_zeros(*features.shape[:-1], self.state_dim)
        state[..., self.plain_idx] = features[..., :n]
        state[..., self.angle_idx] = torch.atan2(features[..., n + k:], features[..., n:n + k])
        return state

    def targets(self, state: torch.Tensor, next_state: torch.Tensor) -> torch.Tensor:
        """Training targets [..., state_dim] for transitions state -> next_state."""
        out = next_state - state
        if self.all_delta:
            return out
        if self.absolute_idx:
            out[..., self.absolute_idx] = next_state[..., self.absolute_idx]
        if self.angle_idx:
            out[..., self.angle_idx] = wrap_angle(out[..., self.angle_idx])
        for s in self.quat_blocks:
            dq = quat_mul(next_state[..., s : s + 4], quat_conj(state[..., s : s + 4]))
            out[..., s : s + 4] = torch.where(dq[..., :1] < 0, -dq, dq)
        return out

    def apply(self, state: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Next state [..., state_dim] from state and a prediction in target space."""
        nxt = state + pred
        if self.all_delta:
            return nxt
        if self.absolute_idx:
            nxt[..., self.absolute_idx] = pred[..., self.absolute_idx]
        for s in self.quat_blocks:
            q = quat_mul(pred[..., s : s + 4], state[..., s : s + 4])
            nxt[..., s : s + 4] = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        return nxt
