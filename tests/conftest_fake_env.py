"""A small pure-JAX multi-task env with the API of `envs.make_multitask`, for the trainer's fast tests.

Point-mass reaching: each task has its own region of goals (a 50-goal table per task, like Meta-World's),
the first three action entries move the point by 0.1 x action per step, reward is
scale_i (1 - tanh(5 |p - goal|)) with per-task scales 0.1 / 1 / 10 (so PopArt has something to do),
success is |p - goal| < 0.05 and sticky within an episode, and every episode ends by time-out after
`episode_length` steps, then the env auto-resets (`info["final_obs"]` keeps the ended episode's last
obs). The observation follows Meta-World's layout: position at 0:3, previous position at 18:21, goal at
36:39, zeros elsewhere, then the one-hot task id. Task "fake-home" has every goal at the start point,
so a policy that stays put always succeeds there (an evaluation test uses it).
"""

from __future__ import annotations

import functools
import os
import sys

# The repository root on sys.path, so `toppo_jax` imports under a bare `pytest` as well as
# `python -m pytest` (pyproject sets no pythonpath).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import struct  # noqa: E402

# XLA's CPU optimisations triple the compile time of the trainer's small test programs and buy
# nothing at these sizes; passed per program, so nothing else in the process is affected.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def fast_jit(fn, **kwargs):
    """jax.jit with FAST_COMPILE."""
    return jax.jit(fn, compiler_options=FAST_COMPILE, **kwargs)


TASKS = ("fake-reach-0", "fake-reach-1", "fake-reach-2", "fake-reach-3", "fake-reach-4", "fake-home")
GROUPS = {"fake4": TASKS[:4], "fake6": TASKS}
NUM_GOALS = 50
SUCCESS_RADIUS = 0.05
BASE_OBS = 39


@struct.dataclass
class FakeState:
    obs: jax.Array
    reward: jax.Array
    done: jax.Array
    metrics: dict
    info: dict
    pos: jax.Array
    prev_pos: jax.Array
    goal_index: jax.Array
    t: jax.Array
    rng: jax.Array
    calls: jax.Array  # step() calls so far (scalar): lets a test poison rewards from a given point on


def _goal_table(task: str, seed: int) -> jax.Array:
    if task == "fake-home":
        return jnp.zeros((NUM_GOALS, 3), jnp.float32)
    k = TASKS.index(task)
    angle = 2.0 * jnp.pi * k / 5.0
    centre = 0.3 * jnp.array([jnp.cos(angle), jnp.sin(angle), 0.0])
    jitter = jax.random.uniform(jax.random.PRNGKey(seed * 1000 + k), (NUM_GOALS, 3), minval=-0.1, maxval=0.1)
    return (centre + jitter * jnp.array([1.0, 1.0, 0.5])).astype(jnp.float32)


class FakeMultiTaskEnv:
    def __init__(self, tasks, envs_per_task, *, seed=0, impl="fake", staggered=True, eval_mode=False, episode_length=20,
                 nan_task=None, nan_after=0, reward_version="v2"):
        if reward_version != "v2":
            raise ValueError(f"the fake env has one reward; reward_version {reward_version!r} is not valid; valid: v2")
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown fake task(s) {unknown}; valid: {', '.join(TASKS)}")
        self.task_names = tuple(tasks)
        self.num_tasks = len(self.task_names)
        self.envs_per_task = envs_per_task
        self.num_envs = self.num_tasks * envs_per_task
        self.observation_size = BASE_OBS + self.num_tasks
        self.action_size = 4
        self.episode_length = episode_length
        self.staggered = staggered and not eval_mode
        self.eval_mode = eval_mode
        self.impl = impl
        # Reward NaN for `nan_task` from step() call `nan_after` on (the trainer's NaN-guard tests).
        self._nan_env = None if nan_task is None else (self._task_id_of(tasks, nan_task), nan_after)
        self._goals = jnp.stack([_goal_table(t, seed) for t in self.task_names])  # [T, 50, 3]
        self._task_id = jnp.repeat(jnp.arange(self.num_tasks, dtype=jnp.int32), envs_per_task)
        scales = jnp.array([0.1, 1.0, 10.0], jnp.float32)
        self._scale = scales[jnp.arange(self.num_tasks) % 3][self._task_id]
        self._one_hot = jax.nn.one_hot(self._task_id, self.num_tasks, dtype=jnp.float32)

    @staticmethod
    def _task_id_of(tasks, name):
        return tuple(tasks).index(name)

    def _obs(self, pos, prev_pos, goal_index):
        goal = self._goals[self._task_id, goal_index]
        base = jnp.zeros((self.num_envs, BASE_OBS), jnp.float32)
        base = base.at[:, 0:3].set(pos).at[:, 18:21].set(prev_pos).at[:, 36:39].set(goal)
        return jnp.concatenate([base, self._one_hot], axis=-1)

    def _goal(self, goal_index):
        return self._goals[self._task_id, goal_index]

    def _draw_goals(self, rng):
        if self.eval_mode:
            return jnp.tile(jnp.arange(self.envs_per_task, dtype=jnp.int32) % NUM_GOALS, self.num_tasks)
        return jax.random.randint(rng, (self.num_envs,), 0, NUM_GOALS)

    def reset(self, rng):
        rng, goal_rng, t_rng = jax.random.split(rng, 3)
        goal_index = self._draw_goals(goal_rng)
        pos = jnp.zeros((self.num_envs, 3), jnp.float32)
        if self.staggered:
            t = jax.random.randint(t_rng, (self.num_envs,), 0, self.episode_length)
        else:
            t = jnp.zeros((self.num_envs,), jnp.int32)
        zeros = jnp.zeros((self.num_envs,), jnp.float32)
        obs = self._obs(pos, pos, goal_index)
        return FakeState(
            obs=obs,
            reward=zeros,
            done=zeros,
            metrics={"success": zeros},
            info={"truncation": zeros, "final_obs": obs, "task_id": self._task_id, "episode_success": zeros},
            pos=pos,
            prev_pos=pos,
            goal_index=goal_index,
            t=t,
            rng=rng,
            calls=jnp.zeros((), jnp.int32),
        )

    def step(self, state, action):
        action = jnp.clip(action, -1.0, 1.0)
        pos = jnp.clip(state.pos + 0.1 * action[:, :3], -1.0, 1.0)
        dist = jnp.linalg.norm(pos - self._goal(state.goal_index), axis=-1)
        reward = self._scale * (1.0 - jnp.tanh(5.0 * dist))
        if self._nan_env is not None:
            task, after = self._nan_env
            reward = jnp.where((self._task_id == task) & (state.calls >= after), jnp.nan, reward)
        success = jnp.maximum(state.metrics["success"], (dist < SUCCESS_RADIUS).astype(jnp.float32))
        t = state.t + 1
        done = (t >= self.episode_length).astype(jnp.float32)
        final_obs = self._obs(pos, state.pos, state.goal_index)
        rng, goal_rng = jax.random.split(state.rng)
        reset = done > 0
        new_goal = jnp.where(reset, self._draw_goals(goal_rng), state.goal_index)
        new_pos = jnp.where(reset[:, None], 0.0, pos)
        new_prev = jnp.where(reset[:, None], 0.0, state.pos)
        obs = jnp.where(reset[:, None], self._obs(new_pos, new_pos, new_goal), final_obs)
        return state.replace(
            obs=obs,
            reward=reward,
            done=done,
            metrics={"success": jnp.where(reset, 0.0, success)},
            info={"truncation": done, "final_obs": final_obs, "task_id": self._task_id, "episode_success": success * done},
            pos=new_pos,
            prev_pos=new_prev,
            goal_index=new_goal,
            t=jnp.where(reset, 0, t),
            rng=rng,
            calls=state.calls + 1,
        )


def make_fake_multitask(tasks, envs_per_task, *, seed=0, impl="fake", staggered=True, eval_mode=False, episode_length=20,
                        mesh=None, reward_version="v2", **poison):
    """Same signature as `envs.make_multitask` (plus `episode_length`, and `nan_task`/`nan_after`); pure JAX,
    so under a device mesh XLA partitions it like the rest of the program (`mesh` is not needed)."""
    return FakeMultiTaskEnv(
        tasks, envs_per_task, seed=seed, impl=impl, staggered=staggered, eval_mode=eval_mode, episode_length=episode_length,
        reward_version=reward_version, **poison
    )


def fake_factory(episode_length: int = 20, **poison):
    return functools.partial(make_fake_multitask, episode_length=episode_length, **poison)
