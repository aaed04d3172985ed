"""HyperCRL: a task-conditioned hypernetwork with an output regulariser (method ``hnet``)."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import torch

from hypercrl.cl import rank_one
from hypercrl.cl.base import (
    Strategy,
    StrategyOptions,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_widths,
    clip_factor,
    clip_grad_norm,
    make_adam,
)
from hypercrl.cl.rank_one import HeadRecorder
from hypercrl.cl.regularizer import (
    LookaheadWorkspace,
    adam_lookahead,
    adam_shifted,
    output_regularizer,
    regularizer_backward,
)
from hypercrl.hnet import (
    ChunkedHyperNetwork,
    FullHyperNetwork,
    HyperNetwork,
    IntervalHyperNetwork,
    LowRankHyperNetwork,
    MipHyperNetwork,
    RecurrentHyperNetwork,
    TaskEmbeddings,
)
from hypercrl.hnet.base import ACTIVATIONS, param_shapes
from hypercrl.hnet.full import INITS
from hypercrl.hnet.interval import MONOTONE
from hypercrl.hnet.mip import ENCODINGS
from hypercrl.model.predictor import PROPAGATIONS
from hypercrl.model.target import gaussian_nll

MEMBER_INPUTS = ("embedding", "code")
# ||dtheta||, the look-ahead's length, is a logged statistic (``dtheta_norm``), not part of
# the method: summing it over a door-size head costs about a tenth of a regularised step, so
# it is measured on every MOVED_EVERY-th regularised step of a task, the first one included
MOVED_EVERY = 10


@dataclasses.dataclass
class HnetOptions(StrategyOptions):
    """HyperCRL's settings (reference §3); defaults are the original's pusher values.

    The objective is the original's: the task loss summed over the batch of B (per sample the
    mean over state dimensions) plus ``beta * B * L_reg``. ``clip`` bounds the gradient norm
    of the current embedding (task-loss gradient) and of theta (task + regulariser gradient).
    ``plastic_previous``: earlier tasks' embeddings keep training, in theta's optimiser, on
    the regulariser evaluated at their own look-ahead (the original's ``plastic_prev_tembs``,
    off for ``hnet``, on for ``chunked_hnet``).

    ``ensemble`` (not in the original; 1 is the original): E members per task, each trained
    on its own bootstrap resample of every minibatch (the task loss is the sum of the
    members'). A member is told apart by its own embedding (``member_input="embedding"``: E
    embeddings per task) or by a fixed random code beside its task's one embedding, as the
    hypernetwork's input (``"code"``). The regulariser holds every member of every earlier
    task. Planning rolls every action sequence out once per member and averages the returns
    (``propagation="ts1"``: each particle follows one member over the horizon; ``"tsinf"``: a
    particle's member is drawn anew at every step, as in PETS), less ``disagreement`` times
    the members' spread (the standard deviation of their predicted next states, averaged
    over state dimensions, summed over the horizon).

    ``reg_every`` (not in the original; 1 is the original): the regulariser, with its
    look-ahead, on every k-th step of a task only, weighted k times, so that its weight per
    step is unchanged on average; the steps between are the task loss's alone.
    """

    lr: float = 1e-4
    clip: float | None = 5.0
    beta: float = 0.05
    lookahead: bool = True
    emb_dim: int = 10
    hnet_hidden: tuple[int, ...] = (50, 50)
    hnet_activation: str = "elu"
    init: str = "xavier"
    plastic_previous: bool = False
    reg_every: int = 1
    ensemble: int = 1
    member_input: str = "embedding"
    propagation: str = "ts1"
    disagreement: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.ensemble = check_int("ensemble", self.ensemble)
        self.member_input = check_choice("member_input", self.member_input, MEMBER_INPUTS)
        if self.member_input == "code" and self.plastic_previous:
            raise ValueError("member_input='code' needs plastic_previous=False")
        self.propagation = check_choice("propagation", self.propagation, PROPAGATIONS)
        self.disagreement = check_number("disagreement", self.disagreement, minimum=0)
        self.beta = check_number("beta", self.beta, minimum=0)
        self.lookahead = check_bool("lookahead", self.lookahead)
        self.emb_dim = check_int("emb_dim", self.emb_dim)
        self.hnet_hidden = check_widths("hnet_hidden", self.hnet_hidden)
        self.hnet_activation = check_choice("hnet_activation", self.hnet_activation, ACTIVATIONS)
        self.init = check_choice("init", self.init, INITS)
        self.plastic_previous = check_bool("plastic_previous", self.plastic_previous)
        self.reg_every = check_int("reg_every", self.reg_every)


class HnetStrategy(Strategy):
    """HyperCRL: h(e_t; theta) generates the target net's weights for task t.

    Per gradient step on a batch of B (reference §3.3): L = task loss summed over the batch;
    the current embedding's gradient of L is clipped to norm ``clip`` and it steps on L
    alone; theta steps on L + beta * B * L_reg, the regulariser evaluated at the Adam
    look-ahead theta + dtheta of the task-loss gradient (and, with ``plastic_previous``, at
    e_j + de_j, the earlier embeddings' own look-ahead) with ONE batched forward over all
    earlier embeddings, after clipping theta's whole gradient to norm ``clip``. Optimisers
    are re-created at every task start (as the original).
    """

    name = "hnet"
    Options = HnetOptions
    opts: HnetOptions

    def __init__(self, net, options, generator):
        super().__init__(net, options, generator)
        self.hnet = self._build_hnet(param_shapes(net)).to(_device(net))
        # member_input="code": member m's fixed code, beside its task's embedding (drawn only
        # then, so that every other setting draws what it always drew)
        self.codes = torch.zeros(0, options.emb_dim, device=_device(net))
        if self.coded:
            codes = torch.randn(options.ensemble, options.emb_dim, generator=generator)
            self.codes = codes.to(_device(net))
        self.embeddings = TaskEmbeddings(options.emb_dim, options.plastic_previous)
        self.embeddings.to(_device(net))
        # regularisation targets W*_j of earlier tasks, flat [T, n_target], set at task start
        self.reg_targets = torch.zeros(0, self.hnet.num_target_params, device=_device(net))
        self.theta_opt: torch.optim.Adam | None = None
        self.emb_opt: torch.optim.Adam | None = None
        self.workspace = LookaheadWorkspace()
        # gradient steps into the current task, counted after task_objective (reg_every;
        # interval_hnet's ramp)
        self.task_steps = 0

    def _build_hnet(self, shapes) -> HyperNetwork:
        o = self.opts
        return FullHyperNetwork(
            shapes, self.hnet_input_dim, o.hnet_hidden, o.hnet_activation, o.init, self.generator
        )

    def theta(self) -> list[torch.nn.Parameter]:
        return list(self.hnet.parameters())

    @property
    def members(self) -> int:
        return self.opts.ensemble

    @property
    def coded(self) -> bool:
        """Members told apart by a fixed code beside the task's one embedding."""
        return self.opts.ensemble > 1 and self.opts.member_input == "code"

    @property
    def hnet_input_dim(self) -> int:
        return self.opts.emb_dim * (2 if self.coded else 1)

    def slots(self, tasks) -> list[int]:
        """The embeddings of ``tasks``, task-major: one per member (task t, member m: t * E +
        m), or one per task when the members are told apart by their code."""
        e = 1 if self.coded else self.opts.ensemble
        return [t * e + m for t in tasks for m in range(e)]

    def hnet_inputs(self, tasks) -> torch.Tensor:
        """The hypernetwork's inputs for every member of ``tasks``, ``[T * E, input]``."""
        emb = self.embeddings(self.slots(tasks))
        if not self.coded:
            return emb
        e = self.opts.ensemble
        return torch.cat([emb.repeat_interleave(e, 0), self.codes.repeat(len(emb), 1)], 1)

    def own_embeddings(self, task: int) -> list[torch.nn.Parameter]:
        """``task``'s embeddings (one per member)."""
        return [self.embeddings.embeddings[i] for i in self.slots([task])]

    def plastic_embeddings(self, task: int) -> list[torch.nn.Parameter]:
        """Earlier embeddings that train in theta's optimiser while ``task`` runs."""
        if not self.opts.plastic_previous:
            return []
        return [self.embeddings.embeddings[i] for i in self.slots(range(task))]

    @torch.no_grad()
    def begin_task(self, task: int) -> None:
        if task > 0:
            earlier = self.hnet_inputs(range(task))
            self.reg_targets = self.hnet(earlier, flat=True).detach()
        for _ in self.slots([task]):
            self.embeddings.add(self.generator)
        self.num_tasks = task + 1
        self.task_steps = 0
        self._make_optimizers(task)

    def _make_optimizers(self, task: int) -> None:
        theta = self.theta() + self.plastic_embeddings(task)
        self.theta_opt = make_adam(theta, self.opts.lr)
        self.emb_opt = make_adam(self.own_embeddings(task), self.opts.lr)

    def train_step(self, task: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        o = self.opts
        # theta's gradients are dropped, not zeroed: every parameter of the hypernetwork gets
        # a task-loss gradient, which then becomes its .grad without a fill and an add (two
        # passes over millions of parameters); the embeddings' are zeroed as before
        for p in self.hnet.parameters():
            p.grad = None
        for e in self.plastic_embeddings(task):
            if e.grad is not None:
                e.grad.zero_()
        self.emb_opt.zero_grad(set_to_none=False)
        batch = x.shape[0]
        regularise = task > 0 and o.beta > 0 and self.task_steps % o.reg_every == 0
        # regularised steps are those at multiples of reg_every: log dtheta_norm on every
        # MOVED_EVERY-th of them
        measure = (self.task_steps // o.reg_every) % MOVED_EVERY == 0
        # the head's gradient may stay as its factors: one row (g, f) for the task loss, one
        # more per earlier task for the regulariser at the look-ahead (hypercrl.cl.rank_one)
        recorder = None if regularise and not o.lookahead else self._head_recorder()
        with self._recording(recorder):
            loss = self.task_objective(task, x, y)
            loss.backward()
        head_factors = self._settle_head(recorder)
        if o.clip:
            clip_grad_norm(self.own_embeddings(task), o.clip)
        self.emb_opt.step()
        logs = {"loss": loss.detach() / (batch * o.ensemble)}
        self.task_steps += 1
        if regularise:
            earlier = self.hnet_inputs(range(task))
            scale = o.beta * batch * o.reg_every
            if o.lookahead:
                plastic = self.plastic_embeddings(task)
                for e in plastic:
                    # the task loss does not reach e_j: its gradient is zero (None at a
                    # task's first step or after a load), its look-ahead Adam's momentum
                    if e.grad is None:
                        e.grad = torch.zeros_like(e)
                # theta + dtheta in one fused pass (the step's largest cost), then de_j
                params = self.theta()
                shifted, sq, head_factors = self._lookahead_point(params, head_factors, measure)
                emb_delta = None
                if plastic:
                    de = adam_lookahead(self.theta_opt, only=plastic)
                    emb_delta = torch.stack([de[e] for e in plastic])
                    if sq is not None:
                        sq = sq + emb_delta.pow(2).sum()
                head = self.hnet.head.weight if head_factors is not None else None
                with self._recording(recorder if head is not None else None):
                    reg = regularizer_backward(
                        self.hnet,
                        earlier,
                        self.reg_targets,
                        dict(zip(params, shifted, strict=True)),
                        scale,
                        emb_delta,
                        recorded=head,
                    )
                if head is not None:  # the task loss's row, then the earlier tasks'
                    head_factors = self._settle_head(recorder, rows=True)
                if sq is not None:
                    logs["dtheta_norm"] = sq.sqrt()
            else:
                reg = output_regularizer(self.hnet, earlier, self.reg_targets)
                (scale * reg).backward()
            logs["reg"] = reg.detach()
        theta = self.theta_opt.param_groups[0]["params"]
        if head_factors is None:
            if o.clip:
                clip_grad_norm(theta, o.clip)
        else:
            self._step_head(theta, *head_factors)
        self.theta_opt.step()
        return logs

    def _head_recorder(self) -> HeadRecorder | None:
        """A recorder for the head's gradient factors where the rank-one Adam step pays (a
        large head, compiling wanted, the optimiser's moments there); else None."""
        if not hasattr(self.hnet, "head_recorder") or self.theta_opt is None:
            return None
        return HeadRecorder() if rank_one.wanted(self.theta_opt, self.hnet.head.weight) else None

    @contextlib.contextmanager
    def _recording(self, recorder: HeadRecorder | None):
        """The head records its gradient's factors into ``recorder`` (if any) meanwhile."""
        if recorder is None:
            yield
            return
        self.hnet.head_recorder = recorder
        try:
            yield
        finally:
            self.hnet.head_recorder = None

    def _lookahead_point(self, params, head_factors, measure: bool):
        """(theta + dtheta per parameter, ||dtheta||^2 or None unless ``measure``, the head's
        factors or None). The head's shift is formed from its factors where they were kept;
        where that kernel is unavailable the head's gradient is written out and every
        parameter shifts as usual."""
        if head_factors is not None:
            head = self.hnet.head.weight
            others = [p for p in params if p is not head]
            out = self.workspace.buffers([head])[0][0]
            if rank_one.shifted(self.theta_opt, head, *head_factors, out):
                shifted, sq = adam_shifted(self.theta_opt, others, self.workspace, measure)
                if sq is not None:
                    sq = sq + rank_one.moved(out, head)
                by_param = dict(zip(others, shifted, strict=True)) | {head: out}
                return [by_param[p] for p in params], sq, head_factors
            head.grad = torch.outer(*head_factors)
        shifted, sq = adam_shifted(self.theta_opt, params, self.workspace, measure)
        return shifted, sq, None

    def _settle_head(self, recorder: HeadRecorder | None, rows: bool = False):
        """The head gradient's factors to step on, (g [n], f [k]) of a rank-one one or with
        ``rows`` every row recorded ([R, n], [R, k]); or None after writing whatever was
        recorded out as the head weight's ``.grad`` (as autograd would have), where the
        head was also reached outside the recorder."""
        if recorder is None or not recorder.recorded:
            return None
        weight = self.hnet.head.weight
        factors = recorder.factors() if rows else recorder.rank_one()
        if factors is not None and weight.grad is None:
            return factors
        grad = recorder.gradient()
        weight.grad = grad if weight.grad is None else weight.grad.add_(grad)
        return None

    def _step_head(self, theta, g: torch.Tensor, f: torch.Tensor) -> None:
        """Clip theta's gradient with the head's factored part counted, and step the head: one
        row ([n], [k]) by the rank-one Adam step, several ([R, n], [R, k]) by writing their
        product out in one matrix product for the optimiser's step."""
        scale: float | torch.Tensor = 1.0
        if self.opts.clip:
            total = clip_grad_norm(theta, self.opts.clip, outside=rank_one.factored_norm(g, f))
            scale = clip_factor(total, self.opts.clip)
        weight = self.hnet.head.weight
        if g.dim() > 1:
            weight.grad = torch.mm((g * scale).t(), f)
        elif not rank_one.adam_step_(self.theta_opt, weight, g, f, scale):
            weight.grad = (g * scale)[:, None] * f  # the compiled step is unavailable

    def task_objective(self, task: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The task loss of a batch (summed over it) with ``task``'s generated weights; an
        ensemble's is the sum of its members' losses, each on its own bootstrap resample."""
        w = self.hnet(self.hnet_inputs([task]))
        e = self.opts.ensemble
        if e == 1:
            return self.task_loss({k: v[0] for k, v in w.items()}, x, y)
        pick = torch.randint(x.shape[0], (e, x.shape[0]), generator=self.generator)
        pick = pick.to(x.device)
        return self.task_loss(w, x[pick], y[pick])  # [E, B, ...] batched over members

    def end_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        for i in self.slots([task]):
            self.embeddings.freeze(i)
            self.embeddings.embeddings[i].grad = None  # no stale task-loss gradient lingers

    def weights(self, tasks: list[int]) -> dict[str, torch.Tensor]:
        return self.hnet(self.hnet_inputs(tasks))

    def state_dict(self) -> dict[str, Any]:
        return {
            "num_tasks": self.num_tasks,
            "hnet": self.hnet.state_dict(),
            "embeddings": self.embeddings.state_dict(),
            "reg_targets": self.reg_targets,
            "codes": self.codes,
            "theta_opt": self.theta_opt.state_dict() if self.theta_opt else None,
            "emb_opt": self.emb_opt.state_dict() if self.emb_opt else None,
            "task_steps": self.task_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_tasks = state["num_tasks"]
        self.hnet.load_state_dict(state["hnet"])
        self.embeddings.resize_(len(self.slots(range(self.num_tasks))))
        self.embeddings.load_state_dict(state["embeddings"])
        self.embeddings.apply_frozen_flags()
        self.reg_targets = state["reg_targets"]
        if "codes" in state:  # saved by every version since ensembles
            self.codes = state["codes"]
        self.task_steps = state.get("task_steps", 0)  # saved by hnet since reg_every
        if self.num_tasks and state["theta_opt"] is not None:
            self._make_optimizers(self.num_tasks - 1)
            self.theta_opt.load_state_dict(state["theta_opt"])
            self.emb_opt.load_state_dict(state["emb_opt"])


@dataclasses.dataclass
class ChunkedHnetOptions(HnetOptions):
    """The chunked variant; defaults are the original's for a 200-200 target (reference §2.3).

    The original's other sizes are passed as these fields: a 200x4 target uses
    ``hnet_hidden=(25, 30), chunk_dim=4000, chunk_emb_dim=20``; a 256-256 target
    ``hnet_hidden=(5, 5), chunk_dim=12000, chunk_emb_dim=40``; always ReLU, ``beta`` 0.005 and
    plastic earlier embeddings.
    """

    beta: float = 0.005
    hnet_hidden: tuple[int, ...] = (20, 20)
    hnet_activation: str = "relu"
    chunk_dim: int = 2000
    chunk_emb_dim: int = 20
    plastic_previous: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.chunk_dim = check_int("chunk_dim", self.chunk_dim)
        self.chunk_emb_dim = check_int("chunk_emb_dim", self.chunk_emb_dim)
        _xavier_only(self.init, "chunked_hnet")  # the chunked hypernetwork has no hyperfan init


class ChunkedHnetStrategy(HnetStrategy):
    """HyperCRL with the chunked hypernetwork (method ``chunked_hnet``)."""

    name = "chunked_hnet"
    Options = ChunkedHnetOptions
    opts: ChunkedHnetOptions

    def _build_hnet(self, shapes) -> HyperNetwork:
        o = self.opts
        return ChunkedHyperNetwork(
            shapes,
            self.hnet_input_dim,
            o.chunk_dim,
            o.chunk_emb_dim,
            o.hnet_hidden,
            o.hnet_activation,
            self.generator,
        )


@dataclasses.dataclass
class LowRankHnetOptions(HnetOptions):
    """The low-rank variant (not in the original): every generated matrix is the task's
    rank-``rank`` product A(e) B(e)^T; with ``base``, a shared full-rank matrix plus that
    product. Every other setting, and its per-family presets, is ``hnet``'s.

    Defaults from ``hypercrl bench cl`` on push (docs/VARIANTS.md): without a base and at
    hnet's lr, held-out error and retention match the full hypernetwork's with 12x fewer
    parameters; a base learns at the plain lr of a target weight and trailed by 15x.
    """

    rank: int = 4
    base: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rank = check_int("rank", self.rank)
        self.base = check_bool("base", self.base)
        _xavier_only(self.init, "lowrank_hnet")  # no hyperfan init for the factors


class LowRankHnetStrategy(HnetStrategy):
    """HyperCRL with the low-rank hypernetwork (method ``lowrank_hnet``): the same objective,
    look-ahead and regulariser over a hypernetwork about 10x smaller at pusher size."""

    name = "lowrank_hnet"
    Options = LowRankHnetOptions
    opts: LowRankHnetOptions

    def _build_hnet(self, shapes) -> HyperNetwork:
        o = self.opts
        return LowRankHyperNetwork(
            shapes, self.hnet_input_dim, o.rank, o.hnet_hidden, o.hnet_activation, o.base,
            self.generator,
        )


@dataclasses.dataclass
class MipHnetOptions(HnetOptions):
    """The magnitude-invariant variant (MIP, not in the original): the embedding enters the
    trunk as cosines and sines (``encoding``), and the head's bias starts as a target network
    (``residual``). Every other setting, and its per-family presets, is ``hnet``'s."""

    encoding: str = "cos_sin"
    residual: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.encoding = check_choice("encoding", self.encoding, ENCODINGS)
        self.residual = check_bool("residual", self.residual)
        _xavier_only(self.init, "mip_hnet")


class MipHnetStrategy(HnetStrategy):
    """HyperCRL with the MIP hypernetwork (method ``mip_hnet``): the same objective,
    look-ahead and regulariser; generated weights that do not scale with the embedding."""

    name = "mip_hnet"
    Options = MipHnetOptions
    opts: MipHnetOptions

    def _build_hnet(self, shapes) -> HyperNetwork:
        o = self.opts
        return MipHyperNetwork(
            shapes, self.hnet_input_dim, o.hnet_hidden, o.hnet_activation, o.encoding, o.residual,
            self.generator,
        )


@dataclasses.dataclass
class RecurrentHnetOptions(HnetOptions):
    """The recurrent variant (not in the original): an LSTM of ``rnn_hidden`` units emits the
    target weights in chunks of ``chunk_dim``, reading the task embedding and a learned chunk
    embedding of ``chunk_emb_dim`` at each step. The objective, ``beta``, ``lr`` and the
    regulariser are ``hnet``'s; ``hnet_hidden`` and ``hnet_activation`` are not used."""

    chunk_dim: int = 2000
    chunk_emb_dim: int = 20
    rnn_hidden: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        self.chunk_dim = check_int("chunk_dim", self.chunk_dim)
        self.chunk_emb_dim = check_int("chunk_emb_dim", self.chunk_emb_dim)
        self.rnn_hidden = check_int("rnn_hidden", self.rnn_hidden)
        _xavier_only(self.init, "recurrent_hnet")


class RecurrentHnetStrategy(HnetStrategy):
    """HyperCRL with the recurrent hypernetwork (method ``recurrent_hnet``): the same
    objective, look-ahead and regulariser; chunks generated in order by an LSTM."""

    name = "recurrent_hnet"
    Options = RecurrentHnetOptions
    opts: RecurrentHnetOptions

    def _build_hnet(self, shapes) -> HyperNetwork:
        o = self.opts
        return RecurrentHyperNetwork(
            shapes, self.hnet_input_dim, o.chunk_dim, o.chunk_emb_dim, o.rnn_hidden, self.generator
        )


@dataclasses.dataclass
class IntervalHnetOptions(HnetOptions):
    """The interval variant (nested HyperInterval, not in the original): each task owns a box
    of embeddings of budget ``eps`` around sigma cos(e_t), all boxes sharing a point (the
    universal embedding). The task loss is ``kappa`` times the loss at the box's centre plus
    ``1 - kappa`` times, per sample, the larger of the losses at its lower and upper weights;
    over each task's first ``warmup`` steps the box grows from 0 to ``eps`` and the weight of
    the centre falls from 1 to ``kappa``. The regulariser holds the centres' weights, as
    ``hnet``'s holds its embeddings'. ``nested=False``: boxes around the embeddings
    themselves, which need not share a point. Every other setting is ``hnet``'s; the trunk's
    activation must be monotone."""

    eps: float = 1.0
    kappa: float = 0.5
    warmup: int = 1000
    nested: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.eps = check_number("eps", self.eps, minimum=0, above=True)
        self.kappa = check_number("kappa", self.kappa, minimum=0, maximum=1)
        self.warmup = check_int("warmup", self.warmup)
        self.nested = check_bool("nested", self.nested)
        self.hnet_activation = check_choice("hnet_activation", self.hnet_activation, MONOTONE)
        if self.ensemble != 1:
            raise ValueError(f"ensemble must be 1 for interval_hnet, got {self.ensemble}")
        _xavier_only(self.init, "interval_hnet")


class IntervalHnetStrategy(HnetStrategy):
    """HyperCRL with the interval hypernetwork (method ``interval_hnet``): the same look-ahead
    and regulariser, an interval task loss, and a universal embedding for every task."""

    name = "interval_hnet"
    Options = IntervalHnetOptions
    opts: IntervalHnetOptions
    hnet: IntervalHyperNetwork

    def _build_hnet(self, shapes) -> HyperNetwork:
        o = self.opts
        return IntervalHyperNetwork(
            shapes, o.emb_dim, o.hnet_hidden, o.hnet_activation, o.eps, o.nested,
            self.generator,
        )

    def task_objective(self, task: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        o = self.opts
        # the box and kappa ramp over the task's first steps (train_step counts them)
        ramp = min(1.0, self.task_steps / o.warmup) if o.warmup else 1.0
        kappa = 1.0 - (1.0 - o.kappa) * ramp
        loss = super().task_objective(task, x, y)  # at the box's centre
        if kappa == 1.0:  # no box yet, or no weight on it
            return loss
        low, _, up = self.hnet.bounds(self.embeddings([task]), scale=ramp)
        both = self.hnet.split(torch.cat([low, up]))  # [2, *shape] each
        mean, logvar = self.net.run(both, x)  # [2, B, S]
        # per sample the larger of the two losses, summed over the batch
        worst = gaussian_nll(mean, logvar, y, reduction="none").max(dim=0).values.sum()
        return kappa * loss + (1.0 - kappa) * worst

    def has_universal(self) -> bool:
        """Whether the seen tasks' boxes share a point (always, nested)."""
        if self.num_tasks == 0:
            return False
        try:
            self._universal_centre()
        except ValueError:
            return False
        return True

    def _universal_centre(self) -> torch.Tensor:
        with torch.no_grad():
            return self.hnet.universal(self.embeddings(range(self.num_tasks)))

    def universal_weights(self) -> dict[str, torch.Tensor]:
        """Weights ``[1, *shape]`` at the universal embedding of every task seen so far."""
        centre = self._universal_centre()
        with torch.no_grad():
            return self.hnet.split(self.hnet.generate(centre[None]))


def _xavier_only(init: str, method: str) -> None:
    """ValueError unless ``init`` is xavier, the only initialisation of ``method``."""
    if init != "xavier":
        raise ValueError(f"init must be one of ['xavier'] for {method}, got {init!r}")


def _device(net: torch.nn.Module) -> torch.device:
    return next(net.parameters()).device
