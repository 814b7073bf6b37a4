"""The port as a ``gymnasium.vector.VectorEnv``, registered like official Meta-World's vector envs.

    import gymnasium as gym
    import envs.gym  # registers toppo-jax/MT10, toppo-jax/MT50, toppo-jax/MT1-<task>

    vec = gym.make_vec("toppo-jax/MT10", seed=0, use_one_hot=True)   # like gym.make_vec("Meta-World/MT10", ...)
    obs, info = vec.reset(seed=0)
    obs, reward, terminated, truncated, info = vec.step(vec.action_space.sample())

Numpy in, numpy out; inside, one jitted ``reset`` and one jitted ``step`` of ``envs.make_multitask``
(every env of every task in one call). The layout follows official ``metaworld.register_mw_envs``:
MT10/MT50 run one env per task in the official task order (``envs_per_task=k`` gives k per task,
env i belonging to task i // k), MT1-<task> runs ``num_envs`` envs of one task. Autoreset is
Gymnasium's ``AutoresetMode.SAME_STEP`` (official's default): at the 500th step of an episode
``truncated`` is True, ``obs`` is already the next episode's first observation and the last one is
in ``info["final_obs"]``, the step's info in ``info["final_info"]`` (with ``"episode"`` as
``RecordEpisodeStatistics`` gives it). ``terminated`` is always False. What matches official and
what does not: docs/gymnasium.md.

Goals and seeds, as official: the constructor's ``seed`` picks the benchmark's 50 goals per task
(``metaworld.MT10(seed)`` / ``MT50(seed)``, via ``envs.assets.goal_table``) and seeds each env's
task sampler (``np.random.default_rng(seed + j)`` for the j-th env of a task, i.e. ``seed`` itself
with one env per task, as official's ``env.seed(seed)``); every reset draws the goal index with
``rng.choice(50)`` as official's ``RandomTaskSelectWrapper``. ``reset(seed=s)`` reseeds the samplers
the same way from ``s`` (official ignores the reset seed: with ``s`` equal to the constructor's seed
both draw the same goals).

``envs`` never imports this module (``import envs`` stays free of gymnasium); ``import envs.gym``.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AutoresetMode

from envs.backends import DEFAULT_IMPL
from envs.control import ACTION_SIZE, MAX_PATH_LENGTH, NUM_GOALS
from envs.multitask import MultiTaskEnv
from envs.registry import MT10, MT50, TASKS, resolve_tasks
from envs.sawyer import STEP_INFO_KEYS
from envs.types import OBS_GOAL, OBS_SIZE

NAMESPACE = "toppo-jax"
ENV_IDS = (f"{NAMESPACE}/MT10", f"{NAMESPACE}/MT50", *(f"{NAMESPACE}/MT1-{t}" for t in sorted(TASKS)))



class MetaWorldVectorEnv(gym.vector.VectorEnv):
    """Any set of ported tasks as one Gymnasium vector env (see the module docstring).

    Args:
        tasks: 'mt10' | 'mt50' | a task name | a list (``envs.resolve_tasks``).
        envs_per_task: envs per task (env i is task i // envs_per_task).
        seed: benchmark seed of the goal tables and of the task samplers; None draws one (``self.seed``).
        use_one_hot: append the one-hot task id (size = number of tasks), as official's ``OneHotWrapper``.
        impl: the port's physics backend ('mujoco', 'warp', 'auto'); ``envs.make_multitask``.
        reward_function_version: 'v2' (default) or 'v1', official's argument (``reward_version`` of the port).
        max_episode_steps: only None or 500 (the port truncates inside its jitted step at 500).
        terminate_on_success: only False (official's default for MT training envs).
        autoreset_mode: only SAME_STEP (the port resets inside its step and keeps the final obs).
        vector_strategy, num_envs: accepted for the official signature; the strategy is always one
            jitted batch, and num_envs is what the registered MT1 entries turn into envs_per_task.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, tasks="mt10", envs_per_task: int = 1, *, seed: int | None = None, use_one_hot: bool = False,
                 impl: str = DEFAULT_IMPL, max_episode_steps: int | None = None, terminate_on_success: bool = False,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP, vector_strategy: str = "sync",
                 render_mode: str | None = None, reward_function_version: str = "v2", **kwargs):
        bad = sorted(k for k in kwargs if k not in ("width", "height"))  # width/height: render sizes, unused
        if bad:
            raise TypeError(f"toppo-jax vector env: unsupported argument(s) {', '.join(bad)} (docs/gymnasium.md)")
        if max_episode_steps not in (None, MAX_PATH_LENGTH):
            raise ValueError(f"max_episode_steps={max_episode_steps}: the port's episodes are {MAX_PATH_LENGTH} steps")
        if terminate_on_success:
            raise ValueError("terminate_on_success=True is not implemented (the port's step never terminates)")
        if AutoresetMode(autoreset_mode) != AutoresetMode.SAME_STEP:
            raise ValueError(f"autoreset_mode={AutoresetMode(autoreset_mode)}: only SAME_STEP (the port resets inside step)")
        if vector_strategy not in ("sync", "async"):
            raise ValueError(f"vector_strategy={vector_strategy!r}: 'sync' or 'async' (both run one jitted batch)")
        if render_mode is not None:
            raise ValueError("render_mode: not supported here; see envs/render.py for rendering port states")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**31))
        self.seed = int(seed)
        self.use_one_hot = bool(use_one_hot)
        self.mt = MultiTaskEnv(tasks, envs_per_task, seed=self.seed, impl=impl, staggered=False, eval_mode=True,
                               reward_version=reward_function_version)
        self.task_names = self.mt.task_names
        self.envs_per_task = envs_per_task
        self.num_envs = self.mt.num_envs
        self.task_id = np.repeat(np.arange(self.mt.num_tasks), envs_per_task)
        self._copy = np.tile(np.arange(envs_per_task), self.mt.num_tasks)  # j: which env of its task

        # Spaces: official's shapes and dtypes; bounds are the tasks' observation bounds (their union).
        low = np.min([np.asarray(e.obs_low) for e in self.mt.envs], axis=0).astype(np.float64)
        high = np.max([np.asarray(e.obs_high) for e in self.mt.envs], axis=0).astype(np.float64)
        if self.use_one_hot:
            low = np.concatenate([low, np.zeros(self.mt.num_tasks)])
            high = np.concatenate([high, np.ones(self.mt.num_tasks)])
        self.single_observation_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_SIZE,), dtype=np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)

        self._reset_jit = jax.jit(self._reset_fn)
        self._step_jit = jax.jit(self._step_fn)
        self._state = None
        self._samplers: list[np.random.Generator] = []
        self._seed_samplers(self.seed)

    # ---- jitted core ---------------------------------------------------------------------------
    def _reset_fn(self, key: jax.Array, goals: jax.Array):
        n = self.envs_per_task
        keys = jax.random.split(key, self.mt.num_tasks)
        parts = [e.reset(k, n, goals=goals[i * n:(i + 1) * n]) for i, (e, k) in enumerate(zip(self.mt.envs, keys))]
        state = self.mt._merge(parts)
        return state, state.obs

    def _step_fn(self, state, action: jax.Array, next_goal: jax.Array):
        # eval_mode: the auto-reset inside step uses info["goal_index"]; it holds the goal official draws next.
        state = state.replace(info={**state.info, "goal_index": next_goal})
        state = self.mt.step(state, action)
        out = {"obs": state.obs, "reward": state.reward, "done": state.done, "final_obs": state.info["final_obs"],
               "info": state.info["step_info"]}
        return state, out

    # ---- host side -----------------------------------------------------------------------------
    def _seed_samplers(self, seed: int) -> None:
        self._samplers = [np.random.default_rng(seed + int(j)) for j in self._copy]
        self._goal = np.array([r.choice(NUM_GOALS) for r in self._samplers], np.int32)  # the goals of the next reset
        self._next = np.array([r.choice(NUM_GOALS) for r in self._samplers], np.int32)  # the goals after that

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32)
        return obs if self.use_one_hot else obs[:, :OBS_SIZE]

    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        """Reset every env: a new goal per env from its sampler (reseeded from ``seed`` when given)."""
        if options:
            raise ValueError(f"reset options are not supported: {sorted(options)}")
        if seed is not None:
            if not isinstance(seed, (int, np.integer)):
                raise ValueError("seed: one int (env j of a task gets default_rng(seed + j), as official's env.seed)")
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(int(seed))
            self._seed_samplers(int(seed))
        elif self._state is not None:  # a fresh episode: the goal drawn for it is the pending one
            self._goal = self._next
            self._next = np.array([r.choice(NUM_GOALS) for r in self._samplers], np.int32)
        key = jax.random.PRNGKey(self.seed if seed is None else int(seed))
        self._state, obs = self._reset_jit(key, jnp.asarray(self._goal))
        self._ep_return = np.zeros(self.num_envs)
        self._ep_length = np.zeros(self.num_envs, np.int64)
        self._ep_start = np.full(self.num_envs, time.perf_counter())
        return self._obs(jax.device_get(obs)), {}

    def step(self, actions):
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        actions = np.asarray(actions, np.float32)
        if actions.shape != (self.num_envs, ACTION_SIZE):
            raise ValueError(f"actions have shape {actions.shape}; expected {(self.num_envs, ACTION_SIZE)}")
        self._state, out = self._step_jit(self._state, jnp.asarray(actions), jnp.asarray(self._next))
        out = jax.device_get(out)
        reward = np.asarray(out["reward"], np.float64)
        truncated = np.asarray(out["done"]) > 0
        terminated = np.zeros(self.num_envs, bool)
        step_info = {k: np.asarray(out["info"][k], np.float64) for k in STEP_INFO_KEYS}
        self._ep_return += reward
        self._ep_length += 1
        info: dict[str, Any] = {}
        if truncated.any():
            idx = np.flatnonzero(truncated)
            final_obs = self._obs(out["final_obs"]).astype(np.float64)
            info["final_obs"] = np.full(self.num_envs, None, dtype=object)
            for i in idx:
                info["final_obs"][i] = final_obs[i]
            info["_final_obs"] = truncated.copy()
            now = time.perf_counter()
            final_info = {**_masked(step_info, truncated), "episode": _masked({
                "r": self._ep_return.copy(), "l": self._ep_length.copy(), "t": np.round(now - self._ep_start, 6)}, truncated),
                "_episode": truncated.copy()}
            info["final_info"], info["_final_info"] = final_info, truncated.copy()
            # the envs that reset now start the episode of the goal drawn for it; draw the one after
            self._goal[idx] = self._next[idx]
            for i in idx:
                self._next[i] = self._samplers[i].choice(NUM_GOALS)
            self._ep_return[idx], self._ep_length[idx], self._ep_start[idx] = 0.0, 0, now
        if not truncated.all():  # as SyncVectorEnv: the envs that reset report their (empty) reset info
            info.update(_masked(step_info, ~truncated))
        return self._obs(out["obs"]), reward, terminated, truncated, info

    @property
    def goal_index(self) -> np.ndarray:
        """Per env, the index (into the benchmark's 50 goals of its task) of the current episode's goal."""
        return self._goal.copy()

    def goals(self) -> np.ndarray:
        """Per env, the current episode's goal position: ``obs[:, 36:39]`` at reset."""
        return np.asarray(jax.device_get(self._state.obs))[:, OBS_GOAL]

    def __repr__(self) -> str:
        return f"MetaWorldVectorEnv({list(self.task_names)}, num_envs={self.num_envs}, seed={self.seed}, impl={self.mt.impl})"


def _masked(values: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    """{key: values (zero where not mask), _key: mask}: Gymnasium's vector info layout."""
    out = {}
    for k, v in values.items():
        out[k] = np.where(mask, v, np.zeros_like(v))
        out[f"_{k}"] = mask.copy()
    return out


def make_vec(tasks, *, num_envs: int | None = None, envs_per_task: int | None = None, **kwargs) -> MetaWorldVectorEnv:
    """Entry point of the registered ids. MT10/MT50: one env per task unless ``envs_per_task`` (official
    ignores ``num_envs`` there, and so does this); a single task (MT1): ``num_envs`` envs of it."""
    names = resolve_tasks(tasks)
    if envs_per_task is None:
        envs_per_task = (num_envs or 1) if len(names) == 1 else 1
    return MetaWorldVectorEnv(names, envs_per_task, **kwargs)


def register_envs() -> None:
    """Register toppo-jax/MT10, toppo-jax/MT50 and toppo-jax/MT1-<task> (idempotent)."""
    specs = {f"{NAMESPACE}/MT10": list(MT10), f"{NAMESPACE}/MT50": list(MT50)}
    specs.update({f"{NAMESPACE}/MT1-{t}": [t] for t in sorted(TASKS)})
    for env_id, tasks in specs.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, vector_entry_point=functools.partial(make_vec, tasks))


register_envs()
