"""Jitted deterministic evaluation with the Meta-World protocol, and its summary metrics.

The evaluation env is built with `eval_mode=True` and `envs_per_task` = episodes per task (50: env i
of a task runs goal i of the task's 50-goal table, all starting together). One rollout from reset
with the actor's mean action, until every env has finished its first episode, is the whole protocol:
an episode succeeds if any of its steps does; a task's success is the mean over its episodes; the
run reports the mean over tasks, worst-k (mean of the k lowest tasks) and the per-task table.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from toppo_jax import networks as nets
from toppo_jax import ppo

MAX_EVAL_STEPS = 10_000


def make_evaluate(eval_env, networks: nets.Networks, max_steps: int = MAX_EVAL_STEPS) -> Callable:
    """evaluate(actor_params, obs_stats, rng) -> per-task success [T] (pure, jittable, vmappable)."""
    num_tasks, per_task = eval_env.num_tasks, eval_env.envs_per_task

    def evaluate(actor_params, obs_stats: ppo.RunningStats, rng: jax.Array) -> jax.Array:
        state = eval_env.reset(rng)
        no = jnp.zeros((eval_env.num_envs,), bool)

        def running(carry):
            _, _, ended, t = carry
            return jnp.logical_not(jnp.all(ended)) & (t < max_steps)

        def step(carry):
            state, success, ended, t = carry
            mean, _ = networks.actor.apply(actor_params, ppo.normalize_obs(obs_stats, state.obs))
            state = eval_env.step(state, nets.deterministic_action(mean))
            done = state.done > 0
            # Before the time-out the sticky per-episode success is current; at it, the env has reset
            # and the ended episode's success is in info["episode_success"].
            step_success = jnp.where(done, state.info["episode_success"], state.metrics["success"]) > 0
            success = success | (step_success & jnp.logical_not(ended))
            return state, success, ended | done, t + 1

        _, success, _, _ = jax.lax.while_loop(running, step, (state, no, no, jnp.zeros((), jnp.int32)))
        return jnp.mean(success.reshape(num_tasks, per_task).astype(jnp.float32), axis=-1)

    return evaluate


def worst_k(per_task: np.ndarray, k: int) -> float:
    """Worst-k success = mean of the k lowest per-task success rates (k = T is the mean)."""
    return float(np.mean(np.sort(np.asarray(per_task))[:k]))


def summarize(per_task: np.ndarray, task_names: Sequence[str], ks: Sequence[int]) -> dict[str, float]:
    """Stable metric names: eval/success_mean, eval/success_worst_<k> (k <= T), eval/success/<task>."""
    per_task = np.asarray(per_task, dtype=np.float64)
    out = {"eval/success_mean": float(per_task.mean())}
    for k in ks:
        if k <= len(task_names):
            out[f"eval/success_worst_{k}"] = worst_k(per_task, k)
    out.update({f"eval/success/{name}": float(s) for name, s in zip(task_names, per_task)})
    return out
