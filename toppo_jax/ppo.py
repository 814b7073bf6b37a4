"""PPO building blocks as pure functions of arrays: GAE with truncation bootstrapping, the clipped
surrogate, the value loss, per-task advantage normalisation, a running observation normaliser, task-
stratified minibatching and the optimizer.

Every episode in Meta-World ends by time-out, so a time-out must not be treated as terminal: at a
truncated step the TD target bootstraps from V(final obs of the ended episode), while the advantage
recursion still stops at the boundary (the next row is a new episode). Nothing here knows the
environment or the network; the per-task loss functions take the network's `apply` as an argument.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from toppo_jax import networks, popart


class Transition(NamedTuple):
    """One rollout step, time-major [L, N, ...] once stacked by the rollout scan."""

    obs: jax.Array  # raw observation s_t
    action_u: jax.Array  # pre-tanh action u_t (a_t = tanh u_t)
    log_prob: jax.Array  # log N(u_t) under the behaviour policy
    reward: jax.Array  # r_t
    done: jax.Array  # 1 if the episode ended at this step
    truncation: jax.Array  # 1 if it ended by time-out
    final_obs: jax.Array  # true s_{t+1} of the ended episode (equals the next obs when not done)
    success: jax.Array  # episode success of the episode that ended at this step (valid where done)


def gae(
    rewards: jax.Array,
    values: jax.Array,
    dones: jax.Array,
    truncations: jax.Array,
    bootstrap_values: jax.Array,
    last_value: jax.Array,
    gamma: float,
    lam: float,
) -> tuple[jax.Array, jax.Array]:
    """GAE: delta_t = r_t + gamma [(1 - d_t) V(s_t+1) + tau_t V(s_t+1^final)] - V(s_t), A_t = delta_t + gamma lam (1 - d_t) A_t+1 (Schulman et al. 2016; Pardo et al. 2018 for tau).

    Inputs are time-major [L, ...]: `values[t]` = V(s_t); `dones[t]` = the episode ended at step t
    (time-out or terminal); `truncations[t]` = it ended by time-out (a subset of dones);
    `bootstrap_values[t]` = V(final obs) (read only where truncated); `last_value` = V(s_L).
    Returns (advantages, value targets A + V).
    """
    truncations = truncations * dones
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    next_v = (1.0 - dones) * next_values + truncations * bootstrap_values
    deltas = rewards + gamma * next_v - values

    def body(adv_next, xs):
        delta, done = xs
        adv = delta + gamma * lam * (1.0 - done) * adv_next
        return adv, adv

    _, advantages = jax.lax.scan(body, jnp.zeros_like(last_value), (deltas, dones), reverse=True)
    return advantages, advantages + values


ADVANTAGE_NORMS = ("iteration", "minibatch")  # where normalize_per_task runs: on the iteration's batch | on each minibatch


def normalize_per_task(advantages: jax.Array, eps: float = 1e-8) -> jax.Array:
    """A_i <- (A_i - mean(A_i)) / (std(A_i) + eps) within each task i; `advantages` is [T, n]."""
    mu = jnp.mean(advantages, axis=-1, keepdims=True)
    sd = jnp.std(advantages, axis=-1, keepdims=True)
    return (advantages - mu) / (sd + eps)


def clipped_surrogate(log_prob, old_log_prob, advantages, clip_eps: float) -> jax.Array:
    """L_clip = -mean(min(r A, clip(r, 1 - eps, 1 + eps) A)), r = exp(log pi - log pi_old) (Schulman et al. 2017, eq. 7)."""
    ratio = jnp.exp(log_prob - old_log_prob)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    return -jnp.mean(jnp.minimum(unclipped, clipped))


def value_loss(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """L_V = 1/2 mean((n_theta(s) - (G - mu) / sigma)^2), on PopArt-normalised targets."""
    return 0.5 * jnp.mean(jnp.square(prediction - target))


def approx_kl(log_prob, old_log_prob) -> jax.Array:
    """KL(pi_old || pi) ~= mean((r - 1) - log r) (Schulman's k3 estimator)."""
    log_ratio = log_prob - old_log_prob
    return jnp.mean(jnp.expm1(log_ratio) - log_ratio)


def explained_variance(values: jax.Array, targets: jax.Array) -> jax.Array:
    """EV = 1 - Var(G - V) / Var(G): 1 for a perfect critic, 0 for a constant one."""
    return 1.0 - jnp.var(targets - values) / jnp.maximum(jnp.var(targets), 1e-12)


# ------------------------------------------------------------------------ observation normaliser


@struct.dataclass
class RunningStats:
    count: jax.Array  # scalar number of samples seen
    mean: jax.Array  # [D]
    m2: jax.Array  # [D] sum of squared deviations from the mean


def init_running_stats(size: int) -> RunningStats:
    return RunningStats(
        count=jnp.zeros((), jnp.float32), mean=jnp.zeros((size,), jnp.float32), m2=jnp.zeros((size,), jnp.float32)
    )


def update_running_stats(stats: RunningStats, batch: jax.Array) -> RunningStats:
    """Welford/Chan merge: n = n_a + n_b, mu = mu_a + delta n_b / n, M2 = M2_a + M2_b + delta^2 n_a n_b / n (Chan et al. 1979).

    `batch` is [..., D] with D the size of the statistics; every leading entry is one sample.
    """
    x = batch.reshape(-1, batch.shape[-1]).astype(jnp.float32)
    n_b = jnp.asarray(x.shape[0], jnp.float32)
    mean_b = jnp.mean(x, axis=0)
    m2_b = jnp.sum(jnp.square(x - mean_b), axis=0)
    n = stats.count + n_b
    delta = mean_b - stats.mean
    mean = stats.mean + delta * n_b / n
    m2 = stats.m2 + m2_b + jnp.square(delta) * stats.count * n_b / n
    return RunningStats(count=n, mean=mean, m2=m2)


def normalize_obs(stats: RunningStats, obs: jax.Array, clip: float = 10.0) -> jax.Array:
    """x_j <- clip((x_j - mu_j) / sqrt(var_j + 1e-8), -10, 10) for the first D = len(mu) entries; the rest (the one-hot task id) pass through."""
    size = stats.mean.shape[-1]
    var = jnp.where(stats.count > 0, stats.m2 / jnp.maximum(stats.count, 1.0), 1.0)
    head = (obs[..., :size] - stats.mean) / jnp.sqrt(var + 1e-8)
    return jnp.concatenate([jnp.clip(head, -clip, clip), obs[..., size:]], axis=-1)


# --------------------------------------------------------------------------------- minibatches


def stratified_minibatches(rng: jax.Array, batch, num_minibatches: int):
    """Leaves [T, n, ...] -> [M, T, n / M, ...]: each task's n samples shuffled on their own and dealt
    evenly to the M minibatches, so every minibatch holds every task (n divisible by M)."""
    leaves = jax.tree_util.tree_leaves(batch)
    num_tasks, n = leaves[0].shape[:2]
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(rng, num_tasks))

    def deal(x):
        x = jnp.take_along_axis(x, perms.reshape(perms.shape + (1,) * (x.ndim - 2)), axis=1)
        x = x.reshape((num_tasks, num_minibatches, n // num_minibatches) + x.shape[2:])
        return jnp.swapaxes(x, 0, 1)

    return jax.tree_util.tree_map(deal, batch)


def make_optimizer(learning_rate: float | None, adam_eps: float, max_grad_norm: float) -> optax.GradientTransformation:
    """Global-norm clipping g <- g min(1, c / |g|) (Pascanu et al. 2013), then Adam; with
    `learning_rate=None` the final -lr scaling is left to the caller (a traced learning rate)."""
    if learning_rate is None:
        return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.scale_by_adam(eps=adam_eps))
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(learning_rate, eps=adam_eps))


# --------------------------------------------------------------------------- per-task losses


class TaskSamples(NamedTuple):
    """One task's samples of a minibatch (each field [n, ...]); `task_id` is a scalar."""

    obs: jax.Array  # normalised observation
    action_u: jax.Array
    old_log_prob: jax.Array
    advantage: jax.Array  # normalised within the task
    target: jax.Array  # unnormalised value target G
    task_id: jax.Array


def actor_task_loss(
    params, apply_fn: Callable, samples: TaskSamples, rng: jax.Array, clip_eps: float, entropy_coef: float
):
    """One task's actor loss L_clip - c_H H[pi]; returns (loss, (surrogate, entropy, approx_kl, clip_frac, mean log-std))."""
    mean, log_std = apply_fn(params, samples.obs)
    log_prob = networks.gaussian_log_prob(samples.action_u, mean, log_std)
    surrogate = clipped_surrogate(log_prob, samples.old_log_prob, samples.advantage, clip_eps)
    entropy = jnp.mean(networks.squashed_entropy(rng, mean, log_std))
    clip_frac = jnp.mean(jnp.abs(jnp.exp(log_prob - samples.old_log_prob) - 1.0) > clip_eps)
    aux = (surrogate, entropy, approx_kl(log_prob, samples.old_log_prob), clip_frac, jnp.mean(log_std))
    return surrogate - entropy_coef * entropy, aux


def critic_task_loss(params, apply_fn: Callable, popart_state: popart.PopArtState, samples: TaskSamples):
    """One task's value loss on PopArt-normalised targets; returns (loss, loss)."""
    head_out = apply_fn(params, samples.obs)
    prediction = popart.task_outputs(head_out, samples.task_id)
    sigma = popart.popart_sigma(popart_state)[samples.task_id]
    target = popart.normalize(samples.target, popart_state.mean[samples.task_id], sigma)
    loss = value_loss(prediction, target)
    return loss, loss
