"""``sb3-sac``: a model-free reference, stable-baselines3's SAC fine-tuned from task to task.

Driven step by step by the loop like every learner: the same env-step budget per task
(``init_random_steps + mpc_steps``), the first ``init_random_steps`` of them uniform random
(SAC's warm-up), then SAC's stochastic policy with ``gradient_steps`` SAC updates per env
step. Its replay buffer is emptied at every task start, so that, like ``hnet``, it trains on
the current task's data only; its weights carry over (fine-tuning). It is evaluated with its
deterministic policy.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
from typing import Any

import numpy as np

from hypercrl.learners.base import Learner, Policy, Transition
from hypercrl.seeds import seed_of


@dataclasses.dataclass
class SACOptions:
    """SAC's settings (stable-baselines3's defaults); the batch size is the run's."""

    learning_rate: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    gradient_steps: int = 1
    net_arch: tuple[int, ...] = (256, 256)

    def __post_init__(self) -> None:
        from hypercrl.cl.base import check_int, check_number, check_widths

        self.learning_rate = check_number("learning_rate", self.learning_rate, minimum=0,
                                          above=True)
        self.gamma = check_number("gamma", self.gamma, minimum=0, maximum=1, above=True)
        self.tau = check_number("tau", self.tau, minimum=0, maximum=1, above=True)
        self.gradient_steps = check_int("gradient_steps", self.gradient_steps)
        self.net_arch = check_widths("net_arch", self.net_arch)


class SACLearner(Learner):
    """stable-baselines3 SAC through the Learner interface."""

    uses_planner = False
    saved_suffix = ".zip"

    @classmethod
    def methods(cls) -> list[str]:
        return ["sb3-sac"]

    @classmethod
    def options_class(cls, method: str) -> type:
        return SACOptions

    def __init__(self, cfg: Any, seq: Any, progress: bool = False) -> None:
        import gymnasium
        from stable_baselines3 import SAC

        self.cfg = cfg
        self.opts = SACOptions(**cfg.method_options)
        self.low = np.asarray(seq.action_low, np.float32)
        self.high = np.asarray(seq.action_high, np.float32)
        s_dim = seq.observation_dim
        self.spaces = _spaces_env(
            gymnasium.spaces.Box(-np.inf, np.inf, (s_dim,), np.float32),
            gymnasium.spaces.Box(self.low, self.high, dtype=np.float32),
        )
        capacity = cfg.buffer_size or max(1, cfg.init_random_steps + cfg.mpc_steps)
        self.model = SAC(
            "MlpPolicy", self.spaces, seed=seed_of(cfg.seed, 4), device=cfg.device,
            learning_rate=self.opts.learning_rate, gamma=self.opts.gamma, tau=self.opts.tau,
            batch_size=cfg.batch_size, buffer_size=capacity, learning_starts=0,
            policy_kwargs={"net_arch": list(self.opts.net_arch)}, verbose=0,
        )
        self.model.set_logger(_silent_logger())
        self.rng = np.random.default_rng(seed_of(cfg.seed, 1))
        self.task: int | None = None
        self.step = 0  # env steps observed in the current task
        self.counts = {"plan_steps": 0, "gradient_steps": 0}  # policy steps, SAC updates

    def begin_task(self, task: int) -> None:
        self.task, self.step = task, 0
        self.model.replay_buffer.reset()

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.step < self.cfg.init_random_steps:
            return self.rng.uniform(self.low, self.high).astype(np.float32)
        action, _ = self.model.predict(obs, deterministic=False)
        self.counts["plan_steps"] += 1
        return np.asarray(action, np.float32)

    def observe(self, transition: Transition) -> dict[str, float]:
        tr = transition
        done = tr.terminated or tr.truncated
        self.model.replay_buffer.add(
            tr.obs[None], tr.next_obs[None], self.model.policy.scale_action(tr.action[None]),
            np.array([tr.reward], np.float32), np.array([done]),
            [{"TimeLimit.truncated": tr.truncated and not tr.terminated}],
        )
        self.step += 1
        self.model.num_timesteps += 1
        if self.step > self.cfg.init_random_steps and self.model.replay_buffer.size() > 1:
            self.model.train(gradient_steps=self.opts.gradient_steps,
                             batch_size=self.cfg.batch_size)
            self.counts["gradient_steps"] += self.opts.gradient_steps
        return {}

    def end_task(self) -> dict[str, list[float]]:
        self.task = None
        return {}

    def policy(self, task: int) -> Policy:
        return _DeterministicPolicy(self.model)

    def state_dict(self) -> dict[str, Any]:
        weights = io.BytesIO()
        self.model.save(weights)
        return {
            "weights": weights.getvalue(),
            "replay": pickle.dumps(self.model.replay_buffer),
            "num_timesteps": self.model.num_timesteps,
            "n_updates": self.model._n_updates,
            "task": self.task,
            "step": self.step,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_weights(io.BytesIO(state["weights"]))
        self.model.replay_buffer = pickle.loads(state["replay"])  # noqa: S301 (our own file)
        self.model.num_timesteps = state["num_timesteps"]
        self.model._n_updates = state["n_updates"]
        self.task, self.step = state["task"], state["step"]
        self.rng.bit_generator.state = state["rng"]

    def save(self, path: str) -> None:
        self.model.save(path)

    def load(self, path: str) -> None:
        self._load_weights(path)

    def _load_weights(self, source: Any) -> None:
        from stable_baselines3 import SAC

        replay = self.model.replay_buffer
        self.model = SAC.load(source, env=self.spaces, device=self.cfg.device)
        self.model.set_logger(_silent_logger())
        self.model.replay_buffer = replay


def _silent_logger() -> Any:
    """SB3's logger with no output. ``configure(None, [])`` would also make an empty
    ``SB3-<date>`` folder in the temporary directory at every call."""
    from stable_baselines3.common.logger import Logger

    return Logger(folder=None, output_formats=[])


def _spaces_env(observation_space: Any, action_space: Any) -> Any:
    """An env with the spaces SAC is built for; SAC never steps it (the loop does)."""
    import gymnasium

    class SpacesEnv(gymnasium.Env):
        def __init__(self) -> None:
            self.observation_space = observation_space
            self.action_space = action_space

        def reset(self, *, seed=None, options=None):
            raise RuntimeError("the SAC learner is driven by hypercrl's loop")

        def step(self, action):
            raise RuntimeError("the SAC learner is driven by hypercrl's loop")

    return SpacesEnv()


class _DeterministicPolicy:
    def __init__(self, model: Any) -> None:
        self.model = model

    def reset(self, seed: int | None = None) -> None: ...

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(obs, deterministic=True)[0], dtype=np.float32)
