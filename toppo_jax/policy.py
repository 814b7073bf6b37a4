"""The policy as every caller uses it, and the Meta-World evaluation protocol.

`make_policy` is the one chain "normalise the observation -> actor -> action" of this package: the
learner's rollout (sampled actions), the jitted evaluation (tanh(mean), or samples with
`--eval-stochastic`), the reference rollouts on official Meta-World and the videos all act through
it. Observations are the multi-task env's: the 39-d Meta-World observation with the one-hot task id
appended (`with_task_id` appends it to a single-task observation the same way).

The evaluation env is built with `eval_mode=True` and `envs_per_task` = episodes per task (50: env i
of a task runs goal i of the task's 50-goal table, all starting together). One rollout from reset,
until every env has finished its first episode, is the whole protocol: an episode succeeds if any of
its steps does; a task's success is the mean over its episodes; the run reports the mean over tasks,
worst-k (mean of the k lowest tasks) and the per-task table (`summarize`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from toppo_jax import networks as nets
from toppo_jax import ppo

MAX_EVAL_STEPS = 10_000


class Action(NamedTuple):
    action: jax.Array  # a = tanh(u), what the env receives
    u: jax.Array  # the pre-tanh action (stored by the rollout so PPO ratios need no atanh)
    log_prob: jax.Array  # log N(u; mean, std)


def make_policy(actor_apply: Callable, *, stochastic: bool) -> Callable[..., Action]:
    """act(actor_params, obs_stats, obs, rng) -> Action: a = tanh(u), u ~ N(mean, std) if `stochastic`, else u = mean."""

    def act(actor_params, obs_stats: ppo.RunningStats, obs: jax.Array, rng: jax.Array | None = None) -> Action:
        mean, log_std = actor_apply(actor_params, ppo.normalize_obs(obs_stats, obs))
        if stochastic:
            return Action(*nets.sample_action(rng, mean, log_std))
        return Action(nets.deterministic_action(mean), mean, nets.gaussian_log_prob(mean, mean, log_std))

    return act


def with_task_id(obs: jax.Array, task_index, num_tasks: int) -> jax.Array:
    """obs [n, 39] of one task -> [n, 39 + T] with its one-hot id appended, as envs/multitask.py does."""
    one_hot = jax.nn.one_hot(jnp.broadcast_to(task_index, obs.shape[:1]), num_tasks, dtype=jnp.float32)
    return jnp.concatenate([obs, one_hot], axis=-1)


def make_evaluate(eval_env, networks: nets.Networks, max_steps: int = MAX_EVAL_STEPS, stochastic: bool = False) -> Callable:
    """evaluate(actor_params, obs_stats, rng) -> per-task success [T] (pure, jittable, vmappable).

    `stochastic`: act with samples of the policy (as training does) instead of tanh(mean); a
    diagnostic beside the protocol, e.g. for a policy that succeeds only with its noise."""
    num_tasks, per_task = eval_env.num_tasks, eval_env.envs_per_task
    act = make_policy(networks.actor.apply, stochastic=stochastic)

    def evaluate(actor_params, obs_stats: ppo.RunningStats, rng: jax.Array) -> jax.Array:
        state = eval_env.reset(rng)
        act_rng = jax.random.fold_in(rng, 1)
        no = jnp.zeros((eval_env.num_envs,), bool)

        def running(carry):
            _, _, ended, t = carry
            return jnp.logical_not(jnp.all(ended)) & (t < max_steps)

        def step(carry):
            state, success, ended, t = carry
            action = act(actor_params, obs_stats, state.obs, jax.random.fold_in(act_rng, t)).action
            state = eval_env.step(state, action)
            done = state.done > 0
            # Before the time-out the sticky per-episode success is current; at it, the env has reset
            # and the ended episode's success is in info["episode_success"].
            step_success = jnp.where(done, state.info["episode_success"], state.metrics["success"]) > 0
            success = success | (step_success & jnp.logical_not(ended))
            return state, success, ended | done, t + 1

        _, success, _, _ = jax.lax.while_loop(running, step, (state, no, no, jnp.zeros((), jnp.int32)))
        return jnp.mean(success.reshape(num_tasks, per_task).astype(jnp.float32), axis=-1)

    return evaluate


def on_train_state(evaluate: Callable) -> Callable:
    """evaluate(actor_params, obs_stats, rng) -> run(state): the same on a TrainState, with a fixed key
    (the eval env's goals are fixed by eval_mode; the key feeds its reset and the samples)."""

    def run(state) -> jax.Array:
        return evaluate(state.actor_params, state.obs_stats, jax.random.PRNGKey(0))

    return run


def worst_k(per_task: np.ndarray, k: int) -> float:
    """Worst-k success = mean of the k lowest per-task success rates (k = T is the mean)."""
    return float(np.mean(np.sort(np.asarray(per_task))[:k]))


def summarize(per_task: np.ndarray, task_names: Sequence[str], ks: Sequence[int], prefix: str = "eval") -> dict[str, float]:
    """Stable metric names: eval/success_mean, eval/success_worst_<k> (k <= T), eval/success/<task>."""
    per_task = np.asarray(per_task, dtype=np.float64)
    out = {f"{prefix}/success_mean": float(per_task.mean())}
    for k in ks:
        if k <= len(task_names):
            out[f"{prefix}/success_worst_{k}"] = worst_k(per_task, k)
    out.update({f"{prefix}/success/{name}": float(s) for name, s in zip(task_names, per_task)})
    return out
