"""``sb3-sac``: a model-free reference, stable-baselines3's SAC fine-tuned from task to task.

It gets the same env-step budget per task as the model-based methods
(``init_random_steps + mpc_steps``, the first ``init_random_steps`` of them random, as SAC's
``learning_starts``) and is evaluated the same way, with its deterministic policy. Its replay
buffer is emptied at every task start, so that, like ``hnet``, it trains on the current task's
data only; its weights carry over (fine-tuning).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


class SACLearner:
    """Drives one SAC model through the tasks of a :class:`~hypercrl.loop.ContinualRun`."""

    def __init__(self, cfg: Any, low: np.ndarray, high: np.ndarray) -> None:
        self.cfg = cfg
        self.model = None
        self.saved: str | None = None

    def learn_task(self, run: Any, task: int, total: int) -> None:
        from gymnasium.wrappers import RecordEpisodeStatistics, TimeLimit
        from stable_baselines3 import SAC
        from stable_baselines3.common.callbacks import BaseCallback

        from hypercrl.loop import seed_of

        cfg = self.cfg
        env = RecordEpisodeStatistics(TimeLimit(run.tasks[task].make(), cfg.episode_steps))
        env.reset(seed=seed_of(cfg.seed, 10, task, 0))
        if self.model is None:
            self.model = SAC(
                "MlpPolicy", env, seed=seed_of(cfg.seed, 4), device=cfg.device,
                learning_starts=min(cfg.init_random_steps, total), batch_size=cfg.batch_size,
                buffer_size=max(cfg.buffer_size, 1), verbose=0,
            )
        else:
            self.model.set_env(env)
            self.model.replay_buffer.reset()
        bar = run.log.progress(total, f"task {task} sac")

        class _Log(BaseCallback):
            def _on_step(self) -> bool:
                bar.update(1)
                run.progress.env_steps_total += 1
                for info in self.locals.get("infos", []):
                    if "episode" in info:
                        ret = float(info["episode"]["r"])
                        run.log.scalar(f"train/episode_return/task{task}", ret,
                                       run.progress.env_steps_total)
                        run.metrics["train_episodes"].append(
                            {"task": task, "env_steps": run.progress.env_steps_total,
                             "return": ret})
                return True

        self.model.learn(total_timesteps=total, reset_num_timesteps=False, callback=_Log())
        bar.close()
        run.progress.step = total
        env.close()

    def policy(self):
        model = self.model

        class _Policy:
            def reset(self) -> None: ...

            def __call__(self, obs: np.ndarray) -> np.ndarray:
                return np.asarray(model.predict(obs, deterministic=True)[0], dtype=np.float32)

        return _Policy()

    def save(self, path: str) -> None:
        self.model.save(path)
        self.saved = path

    def state_dict(self) -> dict[str, Any]:
        return {"saved": self.saved}

    def load_state_dict(self, state: dict[str, Any], run: Any) -> None:
        """Reload the weights saved at the last task end (the replay buffer is emptied at
        every task start anyway, so nothing else is needed at a task boundary)."""
        from stable_baselines3 import SAC

        self.saved = state["saved"]
        if self.saved and os.path.exists(self.saved):
            self.model = SAC.load(self.saved, device=self.cfg.device)
