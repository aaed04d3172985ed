"""The continual loop over any :class:`~hypercrl.learners.Learner`: collect, evaluate, checkpoint.

Per task t: ``init_random_steps + mpc_steps`` env steps, each ``learner.act`` then
``learner.observe`` (the learner decides how it explores and when it trains); every
``eval_every`` MPC steps every seen task is evaluated over ``curve_episodes`` episodes (the
training curves); at the task's end the learner consolidates (its diagnostics, e.g. the
model-error rows, are recorded), its learned part is saved, every seen task is evaluated over
``eval_episodes`` episodes (a row of the performance matrix), and a checkpoint is written.
An evaluation steps the episodes of all the tasks it covers together where the learner can
(:meth:`~hypercrl.learners.Learner.batch_policy_tasks`), with the numbers of evaluating
them one by one.
Every 1/heldout_fraction-th episode is marked held out (model-error data, never trained on).
The loop knows no environment and no method by name.

Every random stream is seeded from the run's seed: episode e of task t resets its env with
seed ``seed_of(seed, 10, t, e)``, evaluation episode e of task j with ``seed_of(seed, 20, j,
e)`` and its policy (the planner's sampling) with ``seed_of(seed, 21, j, e)``, so that an
evaluation depends on the model and the seed only; the learner's streams and the global
torch, numpy and python ones are in the checkpoint, so a run resumed from a checkpoint (taken
at a task end or an episode boundary) continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import signal
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hypercrl.config import RunConfig, select_tasks
from hypercrl.io import atomic_save, load_checked, write_json
from hypercrl.learners import BatchPolicy, Learner, Policy, Transition, learner_class
from hypercrl.log import RunLogger
from hypercrl.metrics import detection_summary, performance_matrix
from hypercrl.seeds import seed_of
from hypercrl.timing import PhaseTimer

CHECKPOINT = "checkpoint.pt"
TIMING = "timing.json"  # wall seconds per phase of each task (this process's share)
FORMAT = "hypercrl.run"
FORMAT_VERSION = 2
SAVED_PREFIX = "model_after"  # + task index + the learner's suffix: the model after each task


class RunError(ValueError):
    """A run cannot start or resume; the message names the problem."""


class Stopped(KeyboardInterrupt):
    """The run stopped on request (Ctrl-C) after writing a checkpoint to resume from."""

    def __init__(self, run_dir: str) -> None:
        super().__init__(run_dir)
        self.run_dir = run_dir


def run_name(run_dir: str) -> str:
    """A run's name for its videos, one per run directory: the path below ``runs/`` of the
    working directory (``runs/push/hnet-s0`` -> ``push/hnet-s0``) for a run there, else the
    folder name and a hash of its absolute path (``/data/r`` -> ``r-1a2b3c4d``)."""
    path = os.path.abspath(run_dir)
    below = os.path.relpath(path, os.path.abspath("runs"))
    if below != os.curdir and below.split(os.sep)[0] != os.pardir:
        return below
    return f"{os.path.basename(path)}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"


def saved_models(run_dir: str, suffix: str) -> list[int]:
    """Task indices after which the run saved its learner (``model_after<i><suffix>``)."""
    return sorted(int(f[len(SAVED_PREFIX) : -len(suffix)]) for f in os.listdir(run_dir)
                  if f.startswith(SAVED_PREFIX) and f.endswith(suffix)
                  and f[len(SAVED_PREFIX) : -len(suffix)].isdigit())


def saved_model_path(run_dir: str, task: int, suffix: str) -> str:
    return os.path.join(run_dir, f"{SAVED_PREFIX}{task}{suffix}")


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
        try:
            seq = select_tasks(cfg, seq)  # the tasks this run learns, in its order
        except ValueError as e:
            raise RunError(str(e)) from None
        self.cfg, self.seq, self.run_dir = cfg, seq, run_dir
        self.tasks = list(seq.tasks)
        self.video_dir = os.path.join(video_dir, run_name(run_dir))
        self.log = RunLogger(run_dir, quiet=quiet, tensorboard=tensorboard)
        self.progress = Progress()
        self.metrics: dict[str, Any] = {
            "returns": {}, "successes": {}, "model_error_1": {}, "model_error_h": {},
            "eval_curve": [], "train_episodes": [],
            # task_boundaries="inferred": the new tasks the learner began by itself; task-free
            # evaluation: per row i, per task j, the steps planned with each learned task
            "detections": [], "task_usage": {},
        }
        self._eval_envs: dict[tuple[int, int, bool], Any] = {}  # (task, episode, render)
        self.last_usage: list[int] = []  # the last task-free evaluation's steps per task
        self.stop_requested = False  # set by a first Ctrl-C
        # wall seconds per phase: env, plan, train, eval, consolidate, checkpoint, log
        self.timer = PhaseTimer()
        self.task_seconds: dict[str, dict[str, float]] = {}
        torch.manual_seed(seed_of(cfg.seed, 2))
        self.learner: Learner = learner_class(cfg.method)(cfg, seq, progress=not quiet)

    # --- the run ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train every remaining task; returns the metrics.

        A first Ctrl-C (SIGINT, when run in the main thread) lets the run go on to its next
        consistent point (the end of the current episode, or of the task's evaluation), write
        a checkpoint there and stop with :class:`Stopped`; a second one stops at once, the
        last checkpoint on disk being the one to resume from.
        """
        with self._sigint_stops():
            while self.progress.task < len(self.tasks):
                before = self.timer.snapshot()
                self._train_task(self.progress.task)
                self._end_task(self.progress.task)
                self.progress = dataclasses.replace(
                    self.progress, task=self.progress.task + 1, step=0, episode=0
                )
                with self.timer.phase("checkpoint"):
                    self.save_checkpoint()
                self._record_time(self.progress.task - 1, before)
                self._stop_if_asked(checkpointed=True)
        self.close()
        return self.metrics

    @contextlib.contextmanager
    def _sigint_stops(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True
            self.log.info("stopping at the next episode end, with a checkpoint "
                          "(Ctrl-C again to stop now)")

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _stop_if_asked(self, checkpointed: bool = False) -> None:
        if not self.stop_requested:
            return
        if not checkpointed:
            self.save_checkpoint()
        self.close()
        raise Stopped(self.run_dir)

    def close(self) -> None:
        self.log.close()
        for env in self._eval_envs.values():
            env.close()
        self._eval_envs.clear()

    def _train_task(self, t: int) -> None:
        cfg, p = self.cfg, self.progress
        total = cfg.init_random_steps + cfg.mpc_steps
        inferred = cfg.task_boundaries == "inferred"
        if p.step == 0 and p.episode == 0:
            if t == 0 or not inferred:  # inferred: the learner is not told of a new task
                self.learner.begin_task(t)
            self.log.info(f"task {t} ({self.tasks[t].name}): {total} env steps")
        timer = self.timer
        env = self.tasks[t].make()
        with timer.phase("env"):
            obs, _ = env.reset(seed=seed_of(cfg.seed, 10, t, p.episode))
        ep_return, ep_len = 0.0, 0
        bar = self.log.progress(total, f"task {t} collect", initial=p.step)
        last_ckpt = p.step
        while p.step < total:
            with timer.phase("plan"):
                action = self.learner.act(obs)
            with timer.phase("env"):
                obs2, reward, terminated, truncated, _ = env.step(action)
            ep_len += 1
            ended = terminated or truncated or ep_len >= cfg.episode_steps
            ep_return += float(reward)
            p.step += 1
            p.env_steps_total += 1
            bar.update(1)
            mpc_step = p.step - 1 - cfg.init_random_steps  # the MPC step just taken
            # a training-curve point is evaluated before the retrain that falls due at the
            # same step (in observe), as the original's: with the model that took the step
            if mpc_step >= 0 and cfg.eval_every and (mpc_step + 1) % cfg.eval_every == 0:
                with timer.phase("eval"):
                    self._evaluate(t, final=False)
            learning = self.learner.active_task if inferred else None
            with timer.phase("train"):
                stats = self.learner.observe(Transition(
                    obs, action, float(reward), obs2, bool(terminated),
                    bool(ended and not terminated), heldout=self._is_heldout(p.episode),
                ))
            if inferred and self.learner.active_task != learning:
                self._record_detection(t, p.step)
            if stats:
                with timer.phase("log"):
                    self.log.scalars("train", stats, p.env_steps_total)
            if not ended:
                obs = obs2
                continue
            with timer.phase("log"):
                self.log.scalar(f"train/episode_return/task{t}", ep_return, p.env_steps_total)
                episode = {"task": t, "env_steps": p.env_steps_total, "return": ep_return}
                for key, value in self.learner.end_episode().items():
                    self.log.scalar(key, value, p.env_steps_total)
                    episode[key] = value
            self.metrics["train_episodes"].append(episode)
            p.episode += 1
            ep_return, ep_len = 0.0, 0
            with timer.phase("env"):
                obs, _ = env.reset(seed=seed_of(cfg.seed, 10, t, p.episode))
            if p.step < total and (self.stop_requested or (
                    cfg.checkpoint_every and p.step - last_ckpt >= cfg.checkpoint_every)):
                with timer.phase("checkpoint"):
                    self.save_checkpoint()
                last_ckpt = p.step
                self._stop_if_asked(checkpointed=True)
        bar.close()
        env.close()

    def _is_heldout(self, episode: int) -> bool:
        # every n-th episode (the second one first) is kept out of training, for the
        # model-error matrix only
        n = max(1, round(1 / self.cfg.heldout_fraction)) if self.cfg.heldout_fraction else 0
        return bool(n) and episode % n == 1

    def _record_detection(self, t: int, step: int) -> None:
        """The learner began a new task by itself ``step`` env steps into true task ``t``."""
        entry = {"task": t, "step": step, "env_steps": self.progress.env_steps_total,
                 "learner_task": self.learner.active_task}
        self.metrics.setdefault("detections", []).append(entry)
        self.log.info(f"task {t}, step {step}: the learner began its task "
                      f"{entry['learner_task']} (it is not told the task)")
        self.log.scalar("task_free/learner_task", entry["learner_task"], entry["env_steps"])

    def _end_task(self, t: int) -> None:
        rows: dict[str, list[float]] = {}
        with self.timer.phase("consolidate"):  # e.g. EWC's Fisher, the model-error rows
            # inferred boundaries: the learner is not told the task ends (and its model-error
            # rows would be in its own task numbering)
            if self.cfg.task_boundaries == "given":
                rows = self.learner.end_task()
        for key, row in rows.items():
            self.metrics.setdefault(key, {})[str(t)] = row
            for j, value in enumerate(row):
                self.log.scalar(f"{key}/task{j}", value, self.progress.env_steps_total)
        with self.timer.phase("checkpoint"):
            self.learner.save(saved_model_path(self.run_dir, t, self.learner.saved_suffix))
        with self.timer.phase("eval"):
            self._evaluate(t, final=True)
        self._write_metrics()

    def _record_time(self, t: int, before: dict[str, float]) -> None:
        """Write task ``t``'s wall seconds per phase to ``RUN_DIR/timing.json`` (a task
        resumed mid-way counts only the part this process ran)."""
        path = os.path.join(self.run_dir, TIMING)
        if not self.task_seconds and os.path.isfile(path):  # a resumed run keeps the earlier
            with contextlib.suppress(OSError, ValueError, KeyError):
                with open(path, encoding="utf-8") as f:
                    self.task_seconds = dict(json.load(f)["seconds"])
        self.task_seconds[str(t)] = self.timer.since(self.timer.snapshot(), before)
        write_json(path, {"seconds": self.task_seconds})

    # --- evaluation -------------------------------------------------------------------------
    def evaluate_task(self, task: int, episodes: int, video_path: str | None = None,
                      strip_frames: int = 6):
        """Returns and successes of ``episodes`` evaluation episodes of ``task``
        (:meth:`evaluate_tasks` of that one task); ``last_usage``: its task-free usage."""
        videos = {task: video_path} if video_path is not None else None
        ((returns, successes, usage),) = self.evaluate_tasks([task], episodes, videos,
                                                            strip_frames)
        self.last_usage = usage
        return returns, successes

    def evaluate_tasks(self, tasks: Sequence[int], episodes: int,
                       video_paths: dict[int, str] | None = None, strip_frames: int = 6,
                       bar: Any = None) -> list[tuple[list[float], list[float], list[int]]]:
        """Per task of ``tasks``, the returns and successes of its ``episodes`` evaluation
        episodes, and (task-free evaluation) the steps they planned with each seen task's
        model ([] otherwise).

        Episode e of task j runs in its own env (kept for the next evaluation), reset with seed
        ``seed_of(seed, 20, j, e)``, its policy with ``seed_of(seed, 21, j, e)``; it ends
        after ``episode_steps`` steps or when its env terminates or truncates. A learner with
        a :meth:`~hypercrl.learners.Learner.batch_policy_tasks` steps all episodes of all the
        tasks together (one planner call per step for all running episodes); the others run
        one after another. Either way every episode's numbers are the same.
        ``video_paths``: task -> path; that task's episode 0 is recorded there, as an mp4, or
        as a PNG strip of ``strip_frames`` frames for a ``.png`` path. ``bar``: a tqdm bar; the
        evaluation's env steps (of all episodes together, or of each in turn) are added to its
        total and counted on it.
        """
        video_paths = video_paths or {}
        batch = self.learner.batch_policy_tasks(list(tasks), episodes)
        if batch is None and len(tasks) > 1:  # it steps one task's episodes together at most
            return [result for j in tasks for result in self.evaluate_tasks(
                [j], episodes, {j: video_paths[j]} if j in video_paths else None,
                strip_frames, bar)]
        rows = [(j, e) for j in tasks for e in range(episodes)]
        frames: dict[int, Any] = {}  # row -> its video, written as its frames come
        if video_paths:
            from hypercrl.video import recorder

            frames = {r: recorder(video_paths[j], strip_frames)
                      for r, (j, e) in enumerate(rows) if e == 0 and j in video_paths}
        envs = [self._eval_env(j, e, render=r in frames) for r, (j, e) in enumerate(rows)]
        if bar is not None:  # this evaluation's env steps join the bar's total
            bar.total = (bar.total or 0) + self.cfg.episode_steps * (
                1 if batch is not None else len(rows))
            bar.refresh()
        try:
            if batch is not None:
                returns, successes = self._play(rows, envs, batch, frames, bar)
            else:
                returns, successes = [], []
                for r, ((j, e), env) in enumerate(zip(rows, envs, strict=True)):
                    policy = _OneEpisode(self.learner.policy(j))
                    mine = {0: frames[r]} if r in frames else {}
                    ret, ok = self._play([(j, e)], [env], policy, mine, bar)
                    returns += ret
                    successes += ok
            for video in frames.values():
                video.close()
        finally:
            for video in frames.values():
                video.abort()  # after close: nothing left to remove
        out = []
        for i, _ in enumerate(tasks):
            mine = range(i * episodes, (i + 1) * episodes)
            usage = batch.usage_of(mine) if hasattr(batch, "usage_of") else []
            out.append(([returns[r] for r in mine], [successes[r] for r in mine], usage))
        return out

    def _eval_env(self, task: int, episode: int, render: bool) -> Any:
        """The env evaluation episode ``episode`` of ``task`` runs in (made once)."""
        key = (task, episode, render)
        if key not in self._eval_envs:
            self._eval_envs[key] = self.tasks[task].make(
                render_mode="rgb_array" if render else None)
        return self._eval_envs[key]

    def _play(self, rows: Sequence[tuple[int, int]], envs: list[Any], policy: BatchPolicy,
              frames: dict[int, Any], bar: Any = None) -> tuple[list[float], list[float]]:
        """Run the evaluation episodes ``rows`` ((task, episode) pairs, which number their
        seeds) together, row ``i`` in ``envs[i]``; their returns and successes. ``frames``:
        for some rows, where the frames of their env go (``append``) while its episode
        runs."""
        cfg = self.cfg
        obs = [env.reset(seed=seed_of(cfg.seed, 20, j, e))[0]
               for env, (j, e) in zip(envs, rows, strict=True)]
        policy.reset([seed_of(cfg.seed, 21, j, e) for j, e in rows])
        totals, successes = [0.0] * len(envs), [False] * len(envs)
        running = list(range(len(envs)))
        for _ in range(cfg.episode_steps):
            if not running:
                break
            for i in running:
                if i in frames:
                    frames[i].append(envs[i].render())
            actions = policy(np.stack([obs[i] for i in running]), running)
            still = []
            for i, action in zip(running, actions, strict=True):
                obs[i], reward, terminated, truncated, info = envs[i].step(action)
                totals[i] += float(reward)
                successes[i] = successes[i] or bool(info.get("success", False))
                if not (terminated or truncated):
                    still.append(i)
            running = still
            if bar is not None:
                bar.update(1)
        return totals, [float(s) for s in successes]

    def _evaluate(self, i: int, final: bool) -> None:
        cfg = self.cfg
        tasks = list(range(i + 1))
        videos = {}
        if final and cfg.video:
            videos = {j: os.path.join(self.video_dir, f"task{j}_after{i}.mp4") for j in tasks}
        episodes = cfg.eval_episodes if final else cfg.curve_episodes
        bar = self.log.progress(None, f"evaluate after task {i}")  # sized by evaluate_tasks
        results = self.evaluate_tasks(tasks, episodes, videos, bar=bar)
        bar.close()
        row_r, row_s, row_u = [], [], []
        step = self.progress.env_steps_total
        for j, (returns, successes, usage) in zip(tasks, results, strict=True):
            row_r.append(returns)
            row_s.append(successes)
            row_u.append(usage)
            self.log.scalar(f"eval/return/task{j}", float(np.mean(returns)), step)
            self.log.scalar(f"eval/success/task{j}", float(np.mean(successes)), step)
            self.metrics["eval_curve"].append(
                {"task": j, "after": i, "env_steps": step, "return": float(np.mean(returns)),
                 "success": float(np.mean(successes)), "final": final}
            )
        if final:
            self.metrics["returns"][str(i)] = row_r
            self.metrics["successes"][str(i)] = row_s
            if any(row_u):
                self.metrics.setdefault("task_usage", {})[str(i)] = row_u
            self.log.info(f"after task {i}: mean eval return per task "
                          + ", ".join(f"{np.mean(r):.1f}" for r in row_r))
            self._log_matrix_image(i)

    def _log_matrix_image(self, i: int) -> None:
        try:
            from hypercrl.report import matrix_figure_rgb
        except ImportError:
            return
        r = performance_matrix(self.metrics["returns"], len(self.tasks))
        self.log.image("eval/R_matrix", matrix_figure_rgb(r, "mean return"),
                       self.progress.env_steps_total)

    # --- persistence ------------------------------------------------------------------------
    @property
    def has_success(self) -> bool:
        """Whether the tasks define success at all (HalfCheetah's do not: its cells are 0)."""
        return any(t.success is not None for t in self.tasks)

    def _write_metrics(self) -> None:
        extra = {}
        if self.cfg.task_boundaries == "inferred":
            cfg = self.cfg
            done = self.progress.task + (1 if self.progress.step else 0)
            extra["detection"] = detection_summary(
                self.metrics.get("detections", []), max(1, done),
                cfg.init_random_steps + cfg.mpc_steps)
        write_json(os.path.join(self.run_dir, "metrics.json"), {
            "config": dataclasses.asdict(self.cfg), "tasks": [t.name for t in self.tasks],
            **self.metrics, "has_success": self.has_success, **extra})
        self.log.flush()

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": FORMAT_VERSION,
            "config": dataclasses.asdict(self.cfg),
            "progress": dataclasses.asdict(self.progress),
            "learner": self.learner.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),  # noqa: NPY002 (SB3 samples from it)
            "python_rng": random.getstate(),
            "metrics": self.metrics,
            "log_position": self.log.mark(),
        }

    def save_checkpoint(self) -> None:
        """Write ``RUN_DIR/checkpoint.pt`` atomically (write, then rename)."""
        atomic_save(self.state_dict(), os.path.join(self.run_dir, CHECKPOINT))
        self._write_metrics()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.progress = Progress(**state["progress"])
        self.learner.load_state_dict(state["learner"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])  # noqa: NPY002
        random.setstate(state["python_rng"])
        self.metrics = state["metrics"]
        # what a killed run logged after this checkpoint is logged again by the resumed one
        self.log.rewind(state["log_position"], purge_step=self.progress.env_steps_total + 1)


class _OneEpisode:
    """A :class:`~hypercrl.learners.Policy` as the :class:`~hypercrl.learners.BatchPolicy` of
    one episode at a time."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def reset(self, seeds: Sequence[int]) -> None:
        (seed,) = seeds
        self.policy.reset(seed=seed)

    def __call__(self, obs: np.ndarray, episodes: Sequence[int]) -> np.ndarray:
        return self.policy(obs[0])[None]


def load_checkpoint(run_dir: str) -> dict[str, Any]:
    """The run's last checkpoint; RunError if missing or corrupt."""
    path = os.path.join(run_dir, CHECKPOINT)
    if not os.path.isfile(path):
        raise RunError(f"{path}: no checkpoint (is {run_dir} a run directory?)")
    state = load_checked(path, FORMAT, FORMAT_VERSION, "hypercrl run checkpoint", RunError)
    return state
