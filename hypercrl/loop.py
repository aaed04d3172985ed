"""The continual loop: for each task collect, retrain, plan, evaluate every seen task, checkpoint.

Per task t (reference §1.1): ``init_random_steps`` random actions; then ``mpc_steps`` MPC
steps, retraining the dynamics model on the current task's buffer every ``retrain_every``
steps (from the first MPC step on) for ``train_iters`` gradient steps; at the task's end
every seen task is evaluated with MPC over ``eval_episodes`` episodes (and every
``eval_every`` MPC steps, if set), the model-error matrix is measured, and a checkpoint is
written. The loop knows no environment and no method by name: the task sequence brings
envs, rewards and settings as data; the method is a :class:`~hypercrl.ContinualDynamics`
strategy (or the model-free ``sb3-sac`` reference, :mod:`hypercrl.sac`).

Every random stream is seeded from the run's seed: episode e of task t resets its env with
seed ``seed_of(seed, t, e)``, so a run resumed from a checkpoint (taken at a task end or an
episode boundary) continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import numpy as np
import torch

from hypercrl.api import ContinualDynamics
from hypercrl.config import RunConfig
from hypercrl.data import TransitionBuffer
from hypercrl.io import atomic_save, load_checked
from hypercrl.log import RunLogger
from hypercrl.metrics import performance_matrix
from hypercrl.plan import CEM, CEMConfig, MPCAgent

CHECKPOINT = "checkpoint.pt"
FORMAT = "hypercrl.run"
FORMAT_VERSION = 1
MODEL_FREE = ("sb3-sac",)


class RunError(ValueError):
    """A run cannot start or resume; the message names the problem."""


def run_name(run_dir: str) -> str:
    """A run's name for its videos: the path below a ``runs`` folder, else the folder name."""
    parts = os.path.abspath(run_dir).split(os.sep)
    if "runs" in parts[:-1]:
        below = parts[len(parts) - 1 - parts[::-1].index("runs") + 1 :]
        return os.path.join(*below)
    return parts[-1]


def seed_of(seed: int, *parts: int) -> int:
    """A 31-bit seed derived from the run seed and integer parts (task, episode, ...)."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1)[0] & 0x7FFFFFFF)


def model_options(cfg: RunConfig) -> dict[str, Any]:
    """ContinualDynamics keywords of ``cfg.method``, from the run config."""
    opts: dict[str, Any] = {}
    if cfg.method in ("hnet", "chunked_hnet"):
        opts.update(beta=cfg.beta, hnet_activation=cfg.hnet_activation)
        if cfg.method == "hnet":
            opts["hnet_hidden"] = cfg.hnet_hidden
    if cfg.method == "coreset":
        opts["coreset_size"] = cfg.coreset_size
    if cfg.lr > 0:
        opts["lr"] = cfg.lr
    return opts


@dataclasses.dataclass
class Progress:
    """Where a run stands: the task being trained and the position inside it."""

    task: int = 0
    step: int = 0  # env steps done in this task
    episode: int = 0  # episodes started in this task
    env_steps_total: int = 0  # over all tasks, the x-axis of the curves


class ContinualRun:
    """One run of one method on one task sequence.

    Args:
        cfg: the resolved configuration.
        seq: the task sequence (``envs.sequence(...)``): tasks with make() and reward,
            state kinds, action bounds.
        run_dir: where config, scalars, checkpoints and metrics go.
        quiet: no progress bars.
        video_dir: evaluation videos go to ``video_dir/<run name>/`` when ``cfg.video``.
        tensorboard: write TensorBoard events (off for read-only uses such as ``eval``).
    """

    def __init__(self, cfg: RunConfig, seq: Any, run_dir: str, quiet: bool = False,
                 video_dir: str = "videos", tensorboard: bool = True) -> None:
        self.cfg, self.seq, self.run_dir = cfg, seq, run_dir
        n = cfg.num_tasks or len(seq.tasks)
        if not 1 <= n <= len(seq.tasks):
            raise RunError(f"num_tasks={cfg.num_tasks} but the sequence has {len(seq.tasks)}")
        self.tasks = list(seq.tasks)[:n]
        self.video_dir = os.path.join(video_dir, run_name(run_dir))
        self.low = np.asarray(seq.action_low, np.float32)
        self.high = np.asarray(seq.action_high, np.float32)
        self.s_dim, self.a_dim = seq.observation_dim, seq.action_dim
        self.log = RunLogger(run_dir, quiet=quiet, tensorboard=tensorboard)
        self.progress = Progress()
        self.rng = np.random.default_rng(seed_of(cfg.seed, 1))
        self.metrics: dict[str, Any] = {
            "returns": {}, "successes": {}, "model_error_1": {}, "model_error_h": {},
            "eval_curve": [], "train_episodes": [], "planner_ms": [],
        }
        self.buffer = TransitionBuffer(self.s_dim, self.a_dim, cfg.buffer_size)
        self.heldout: dict[int, TransitionBuffer] = {}
        self._eval_envs: dict[tuple[int, bool], Any] = {}
        torch.manual_seed(seed_of(cfg.seed, 2))
        if cfg.method in MODEL_FREE:
            from hypercrl.sac import SACLearner

            self.dynamics = None
            self.sac = SACLearner(cfg, self.low, self.high)
        else:
            self.sac = None
            self.dynamics = ContinualDynamics(
                self.s_dim, self.a_dim, cfg.method, seed=cfg.seed, hidden=cfg.hidden,
                probabilistic=cfg.probabilistic, state_spec=seq.state_kinds,
                batch_size=cfg.batch_size, device=cfg.device, **model_options(cfg),
            )
            optimizer = CEM(
                self.low, self.high, cfg.horizon,
                CEMConfig(population=cfg.population, elites=cfg.elites,
                          iterations=cfg.iterations, init_std=cfg.init_std),
                device=cfg.device,
                generator=torch.Generator(device=cfg.device).manual_seed(seed_of(cfg.seed, 3)),
            )
            self.agent = MPCAgent(self.dynamics, self.tasks[0].reward, optimizer,
                                  compile=cfg.compile)

    # --- the run ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train every remaining task; returns the metrics."""
        while self.progress.task < len(self.tasks):
            self._train_task(self.progress.task)
            self._end_task(self.progress.task)
            self.progress = dataclasses.replace(
                self.progress, task=self.progress.task + 1, step=0, episode=0
            )
            self.buffer = TransitionBuffer(self.s_dim, self.a_dim, self.cfg.buffer_size)
            self.save_checkpoint()
        self.log.close()
        for env in self._eval_envs.values():
            env.close()
        return self.metrics

    def _train_task(self, t: int) -> None:
        cfg, p = self.cfg, self.progress
        total = cfg.init_random_steps + cfg.mpc_steps
        if p.step == 0 and p.episode == 0:
            if self.dynamics is not None:
                self.dynamics.begin_task()
            self.heldout[t] = TransitionBuffer(self.s_dim, self.a_dim, cfg.heldout_size)
            self.log.info(f"task {t} ({self.tasks[t].name}): {total} env steps")
        if self.sac is not None:
            self.sac.learn_task(self, t, total)
            return
        env = self.tasks[t].make()
        obs, _ = env.reset(seed=seed_of(cfg.seed, 10, t, p.episode))
        self.agent.reward = self.tasks[t].reward
        ep_return, ep_len, plan_ms = 0.0, 0, []
        bar = self.log.progress(total, f"task {t} collect", initial=p.step)
        last_ckpt = p.step
        while p.step < total:
            mpc_step = p.step - cfg.init_random_steps
            if mpc_step >= 0 and mpc_step % cfg.retrain_every == 0:
                self._retrain(t)
            if mpc_step < 0:
                action = np.clip(self.rng.standard_normal(self.a_dim), self.low, self.high)
            else:
                start = time.perf_counter()
                action = self.agent.act(obs).cpu().numpy()
                plan_ms.append(1000 * (time.perf_counter() - start))
            action = action.astype(np.float32)
            obs2, reward, terminated, truncated, _ = env.step(action)
            target = self.heldout[t] if self._is_heldout(p.episode) else self.buffer
            target.add(obs, action, obs2)
            ep_return += float(reward)
            ep_len += 1
            p.step += 1
            p.env_steps_total += 1
            bar.update(1)
            if mpc_step >= 0 and cfg.eval_every and (mpc_step + 1) % cfg.eval_every == 0:
                self._evaluate(t, final=False)
            if terminated or truncated or ep_len >= cfg.episode_steps:
                self.log.scalar(f"train/episode_return/task{t}", ep_return, p.env_steps_total)
                self.metrics["train_episodes"].append(
                    {"task": t, "env_steps": p.env_steps_total, "return": ep_return}
                )
                if plan_ms:
                    mean_ms = float(np.mean(plan_ms))
                    self.log.scalar("plan/ms_per_step", mean_ms, p.env_steps_total)
                    self.metrics["planner_ms"].append(mean_ms)
                p.episode += 1
                ep_return, ep_len, plan_ms = 0.0, 0, []
                obs, _ = env.reset(seed=seed_of(cfg.seed, 10, t, p.episode))
                self.agent.reset()
                if cfg.checkpoint_every and p.step - last_ckpt >= cfg.checkpoint_every:
                    if p.step < total:
                        self.save_checkpoint()
                        last_ckpt = p.step
            else:
                obs = obs2
        bar.close()
        env.close()

    def _is_heldout(self, episode: int) -> bool:
        # every n-th episode (the second one first) is kept out of training, for the
        # model-error matrix only
        n = max(1, round(1 / self.cfg.heldout_fraction)) if self.cfg.heldout_fraction else 0
        return bool(n) and episode % n == 1

    def _retrain(self, t: int) -> None:
        s, a, s2 = self.buffer.arrays()
        if len(s) < 2:
            return
        stats = self.dynamics.fit(s, a, s2, steps=self.cfg.train_iters, progress=not self.log.quiet)
        self.log.scalars("train", stats, self.progress.env_steps_total)
        self.agent.set_task(t)  # fetch the new weights once for this training round

    def _end_task(self, t: int) -> None:
        if self.dynamics is not None:
            s, a, s2 = self.buffer.arrays()
            if len(s) >= 2 and self.progress.step == self.cfg.init_random_steps:
                self._retrain(t)  # a task with no MPC steps still trains once
            self.dynamics.end_task()
            self.dynamics.save(os.path.join(self.run_dir, f"model_after{t}.pt"))
            self._model_errors(t)
        else:
            self.sac.save(os.path.join(self.run_dir, f"sac_after{t}.zip"))
        self._evaluate(t, final=True)
        self._write_metrics()

    # --- evaluation -------------------------------------------------------------------------
    def policy(self, task: int):
        """A callable obs -> action for ``task`` with the current model (and a reset hook)."""
        if self.sac is not None:
            return self.sac.policy()
        self.agent.reward = self.tasks[task].reward
        self.agent.set_task(task)
        return _MPCPolicy(self.agent)

    def evaluate_task(self, task: int, episodes: int, video_path: str | None = None):
        """Returns and successes of ``episodes`` evaluation episodes of ``task``."""
        render = video_path is not None
        key = (task, render)
        if key not in self._eval_envs:
            self._eval_envs[key] = self.tasks[task].make(render_mode="rgb_array" if render
                                                         else None)
        env = self._eval_envs[key]
        policy = self.policy(task)
        returns, successes = [], []
        for e in range(episodes):
            obs, _ = env.reset(seed=seed_of(self.cfg.seed, 20, task, e))
            policy.reset()
            total, success, frames = 0.0, False, []
            for _ in range(self.cfg.episode_steps):
                if render and e == 0:
                    frames.append(env.render())
                obs, reward, terminated, truncated, info = env.step(policy(obs))
                total += float(reward)
                success = success or bool(info.get("success", False))
                if terminated or truncated:
                    break
            if render and e == 0:
                from hypercrl.video import write_mp4

                write_mp4(video_path, frames)
            returns.append(total)
            successes.append(float(success))
        return returns, successes

    def _evaluate(self, i: int, final: bool) -> None:
        cfg = self.cfg
        bar = self.log.progress(i + 1, f"evaluate after task {i}")
        row_r, row_s = [], []
        for j in range(i + 1):
            video = None
            if final and cfg.video:
                video = os.path.join(self.video_dir, f"task{j}_after{i}.mp4")
            returns, successes = self.evaluate_task(j, cfg.eval_episodes, video)
            row_r.append(returns)
            row_s.append(successes)
            step = self.progress.env_steps_total
            self.log.scalar(f"eval/return/task{j}", float(np.mean(returns)), step)
            self.log.scalar(f"eval/success/task{j}", float(np.mean(successes)), step)
            self.metrics["eval_curve"].append(
                {"task": j, "after": i, "env_steps": step, "return": float(np.mean(returns)),
                 "final": final}
            )
            bar.update(1)
        bar.close()
        if final:
            self.metrics["returns"][str(i)] = row_r
            self.metrics["successes"][str(i)] = row_s
            self.log.info(f"after task {i}: mean eval return per task "
                          + ", ".join(f"{np.mean(r):.1f}" for r in row_r))
            self._log_matrix_image(i)
        if self.dynamics is not None and self.progress.task == i:
            self.agent.set_task(i)  # back to planning for the task being trained

    def _model_errors(self, i: int) -> None:
        one, hstep = [], []
        for j in range(i + 1):
            s, a, s2 = self.heldout[j].arrays()
            if len(s) == 0:
                one.append(float("nan"))
                hstep.append(float("nan"))
                continue
            one.append(self.dynamics.mse(s, a, s2, task=j))
            hstep.append(self._h_step_error(j, s, a, s2))
        self.metrics["model_error_1"][str(i)] = one
        self.metrics["model_error_h"][str(i)] = hstep
        for j, (e1, eh) in enumerate(zip(one, hstep, strict=True)):
            self.log.scalar(f"model_error/one_step/task{j}", e1, i)
            self.log.scalar(f"model_error/h_step/task{j}", eh, i)

    def _h_step_error(self, task: int, s, a, s2) -> float:
        """MSE after rolling the model H steps open-loop along held-out segments."""
        h = self.cfg.horizon
        # consecutive rows form a segment only where s2[k] == s[k + 1]
        starts = [k for k in range(0, len(s) - h + 1)
                  if np.array_equal(s2[k : k + h - 1], s[k + 1 : k + h])][::h]
        if not starts:
            return float("nan")
        idx = np.asarray(starts)[:, None] + np.arange(h)[None]
        pred = self.dynamics.predictor(task)
        dev = self.dynamics.device
        with torch.no_grad():
            roll = pred.rollout(torch.as_tensor(s[idx[:, 0]], device=dev),
                                torch.as_tensor(a[idx], device=dev))
        truth = torch.as_tensor(s2[idx[:, -1]], device=dev)
        return float((roll[:, -1] - truth).pow(2).mean())

    def _log_matrix_image(self, i: int) -> None:
        try:
            from hypercrl.report import matrix_figure_rgb
        except ImportError:
            return
        r = performance_matrix(self.metrics["returns"], len(self.tasks))
        self.log.image("eval/R_matrix", matrix_figure_rgb(r, "mean return"), i)

    # --- persistence ------------------------------------------------------------------------
    def _write_metrics(self) -> None:
        path = os.path.join(self.run_dir, "metrics.json")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"config": dataclasses.asdict(self.cfg), "tasks":
                       [t.name for t in self.tasks], **self.metrics}, f)
        os.replace(tmp, path)
        self.log.flush()

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": FORMAT_VERSION,
            "config": dataclasses.asdict(self.cfg),
            "progress": dataclasses.asdict(self.progress),
            "dynamics": self.dynamics.state_dict() if self.dynamics is not None else None,
            "buffer": self.buffer.state_dict(),
            "heldout": {j: b.state_dict() for j, b in self.heldout.items()},
            "rng": self.rng.bit_generator.state,
            "planner_gen": (self.agent.optimizer.generator.get_state()
                            if self.dynamics is not None else None),
            "torch_rng": torch.get_rng_state(),
            "metrics": self.metrics,
            "sac": self.sac.state_dict() if self.sac is not None else None,
        }

    def save_checkpoint(self) -> None:
        """Write ``RUN_DIR/checkpoint.pt`` atomically (write, then rename)."""
        atomic_save(self.state_dict(), os.path.join(self.run_dir, CHECKPOINT))
        self._write_metrics()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.progress = Progress(**state["progress"])
        if self.dynamics is not None:
            self.dynamics = ContinualDynamics.load_from_state(state["dynamics"],
                                                              device=self.cfg.device)
            self.agent = MPCAgent(self.dynamics, self.tasks[0].reward, self.agent.optimizer,
                                  compile=self.cfg.compile)
            self.agent.optimizer.generator.set_state(state["planner_gen"])
            if self.dynamics.num_tasks:
                self.agent.set_task(self.dynamics.num_tasks - 1)
                self.agent.optimizer.generator.set_state(state["planner_gen"])
        self.buffer = TransitionBuffer.from_state_dict(state["buffer"])
        self.heldout = {int(j): TransitionBuffer.from_state_dict(b)
                        for j, b in state["heldout"].items()}
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.metrics = state["metrics"]
        if self.sac is not None:
            self.sac.load_state_dict(state["sac"], self)


class _MPCPolicy:
    def __init__(self, agent: MPCAgent) -> None:
        self.agent = agent

    def reset(self) -> None:
        self.agent.reset()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.agent.act(obs).cpu().numpy().astype(np.float32)


def load_checkpoint(run_dir: str) -> dict[str, Any]:
    """The run's last checkpoint; RunError if missing or corrupt."""
    path = os.path.join(run_dir, CHECKPOINT)
    if not os.path.isfile(path):
        raise RunError(f"{path}: no checkpoint (is {run_dir} a run directory?)")
    state = load_checked(path, FORMAT, FORMAT_VERSION, "hypercrl run checkpoint", RunError)
    return state
