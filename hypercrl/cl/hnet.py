"""HyperCRL: a task-conditioned hypernetwork with an output regulariser (method ``hnet``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from hypercrl.cl.base import Strategy, StrategyOptions, make_adam
from hypercrl.cl.regularizer import (
    LookaheadWorkspace,
    adam_lookahead,
    output_regularizer,
    regularizer_backward,
)
from hypercrl.hnet import ChunkedHyperNetwork, FullHyperNetwork, HyperNetwork, TaskEmbeddings
from hypercrl.hnet.base import param_shapes


@dataclasses.dataclass
class HnetOptions(StrategyOptions):
    """HyperCRL's settings (reference §3); defaults are the original's pusher values.

    The task loss is the per-sample mean (the original sums over its batch of 100 and scales
    the regulariser by the batch size, which is the same objective up to that factor);
    ``beta`` multiplies the regulariser against the mean loss.
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


class HnetStrategy(Strategy):
    """HyperCRL: h(e_t; theta) generates the target net's weights for task t.

    Per gradient step (reference §3.3): the current embedding steps on the task loss alone;
    theta steps on task loss + beta * output regulariser, the regulariser evaluated at the
    Adam look-ahead theta + dtheta of the task-loss gradient, with ONE batched forward over
    all earlier embeddings. Optimisers are re-created at every task start (as the original).
    """

    name = "hnet"
    Options = HnetOptions
    opts: HnetOptions

    def __init__(self, net, options, generator):
        super().__init__(net, options, generator)
        self.hnet = self._build_hnet(param_shapes(net)).to(_device(net))
        self.embeddings = TaskEmbeddings(options.emb_dim, options.plastic_previous)
        self.embeddings.to(_device(net))
        # regularisation targets W*_j of earlier tasks, flat [T, n_target], set at task start
        self.reg_targets = torch.zeros(0, self.hnet.num_target_params, device=_device(net))
        self.theta_opt: torch.optim.Adam | None = None
        self.emb_opt: torch.optim.Adam | None = None
        self.workspace = LookaheadWorkspace()

    def _build_hnet(self, shapes) -> HyperNetwork:
        o = self.opts
        return FullHyperNetwork(
            shapes, o.emb_dim, o.hnet_hidden, o.hnet_activation, o.init, self.generator
        )

    def theta(self) -> list[torch.nn.Parameter]:
        return list(self.hnet.parameters())

    @torch.no_grad()
    def begin_task(self, task: int) -> None:
        if task > 0:
            self.reg_targets = self.hnet(self.embeddings(range(task)), flat=True).detach()
        self.embeddings.add(self.generator)
        self.num_tasks = task + 1
        self._make_optimizers(task)

    def _make_optimizers(self, task: int) -> None:
        theta = self.theta()
        if self.opts.plastic_previous:
            theta += [self.embeddings.embeddings[j] for j in range(task)]
        self.theta_opt = make_adam(theta, self.opts.lr)
        self.emb_opt = make_adam([self.embeddings.embeddings[task]], self.opts.lr)

    def train_step(self, task: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        o = self.opts
        self.theta_opt.zero_grad(set_to_none=False)
        self.emb_opt.zero_grad(set_to_none=False)
        w = self.hnet(self.embeddings([task]))
        loss = self.task_loss({k: v[0] for k, v in w.items()}, x, y)
        loss.backward()
        emb = self.embeddings.embeddings[task]
        if o.clip:
            torch.nn.utils.clip_grad_norm_([emb], o.clip)
        self.emb_opt.step()
        logs = {"loss": loss.detach()}
        if task > 0 and o.beta > 0:
            earlier = self.embeddings(range(task))
            if o.lookahead:
                delta = adam_lookahead(self.theta_opt, self.workspace)
                reg = regularizer_backward(self.hnet, earlier, self.reg_targets, delta, o.beta,
                                           self.workspace)
            else:
                delta = None
                reg = output_regularizer(self.hnet, earlier, self.reg_targets)
                (o.beta * reg).backward()
            logs["reg"] = reg.detach()
            if delta:
                norms = torch._foreach_norm(list(delta.values()))
                logs["dtheta_norm"] = torch.linalg.vector_norm(torch.stack(norms))
        if o.clip:
            torch.nn.utils.clip_grad_norm_(self.theta_opt.param_groups[0]["params"], o.clip)
        self.theta_opt.step()
        return logs

    def end_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        self.embeddings.freeze(task)

    def weights(self, tasks: list[int]) -> dict[str, torch.Tensor]:
        return self.hnet(self.embeddings(tasks))

    def state_dict(self) -> dict[str, Any]:
        return {
            "num_tasks": self.num_tasks,
            "hnet": self.hnet.state_dict(),
            "embeddings": self.embeddings.state_dict(),
            "reg_targets": self.reg_targets,
            "theta_opt": self.theta_opt.state_dict() if self.theta_opt else None,
            "emb_opt": self.emb_opt.state_dict() if self.emb_opt else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_tasks = state["num_tasks"]
        self.hnet.load_state_dict(state["hnet"])
        self.embeddings.resize_(self.num_tasks)
        self.embeddings.load_state_dict(state["embeddings"])
        self.embeddings.apply_frozen_flags()
        self.reg_targets = state["reg_targets"]
        if self.num_tasks and state["theta_opt"] is not None:
            self._make_optimizers(self.num_tasks - 1)
            self.theta_opt.load_state_dict(state["theta_opt"])
            self.emb_opt.load_state_dict(state["emb_opt"])


@dataclasses.dataclass
class ChunkedHnetOptions(HnetOptions):
    """The chunked variant; defaults are the original's for a 200-200 target (reference §2.3)."""

    beta: float = 0.005
    hnet_hidden: tuple[int, ...] = (20, 20)
    hnet_activation: str = "relu"
    chunk_dim: int = 2000
    chunk_emb_dim: int = 20
    plastic_previous: bool = True


class ChunkedHnetStrategy(HnetStrategy):
    """HyperCRL with the chunked hypernetwork (method ``chunked_hnet``)."""

    name = "chunked_hnet"
    Options = ChunkedHnetOptions
    opts: ChunkedHnetOptions

    def _build_hnet(self, shapes) -> HyperNetwork:
        o = self.opts
        if o.init != "xavier":
            raise ValueError(f"init {o.init!r} is not available for chunked_hnet; valid: "
                             "['xavier']")
        return ChunkedHyperNetwork(
            shapes, o.emb_dim, o.chunk_dim, o.chunk_emb_dim, o.hnet_hidden, o.hnet_activation,
            self.generator,
        )


def _device(net: torch.nn.Module) -> torch.device:
    return next(net.parameters()).device
