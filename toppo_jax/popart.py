"""Per-task PopArt value normalisation (van Hasselt et al. 2016; multi-task form: Hessel et al. 2019).

Each task i keeps running first and second moments of its value targets, giving a shift mu_i and a
scale sigma_i; the critic is trained on normalised targets (G - mu_i) / sigma_i and its output is
denormalised with the statistics of the sample's own task. When the statistics move, ART rescales the
last linear map so that every task's unnormalised prediction is unchanged. A scalar head shared by
all tasks cannot be rescaled for every task at once, so in that case each task owns a scalar affine
output layer n_i = w_i h + b_i (w_i = 1, b_i = 0 at start) on top of the shared head output h, and
ART rescales (w_i, b_i); the affine is part of the PopArt state and is changed only by ART, so the
trainable parameter count is the network's. With one head per task, ART rescales each task's column
of the head's kernel and its bias instead (Adam's moments are not rescaled, as in the paper). All
functions are pure and jittable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

SIGMA_MIN = 1e-4
SIGMA_MAX = 1e6


@struct.dataclass
class PopArtState:
    mean: jax.Array  # [T] running E[G]
    second_moment: jax.Array  # [T] running E[G^2]
    count: jax.Array  # [T] number of statistics updates so far
    affine_w: jax.Array  # [T] per-task output scale (scalar-head case)
    affine_b: jax.Array  # [T] per-task output shift (scalar-head case)


def init_popart(num_tasks: int) -> PopArtState:
    """Statistics (mu, nu) = (0, 1), so sigma = 1 and the affine is the identity before any update."""
    zeros = jnp.zeros((num_tasks,), jnp.float32)
    ones = jnp.ones((num_tasks,), jnp.float32)
    return PopArtState(mean=zeros, second_moment=ones, count=zeros, affine_w=ones, affine_b=zeros)


def popart_sigma(state: PopArtState) -> jax.Array:
    """sigma_i = sqrt(nu_i - mu_i^2), clipped to [1e-4, 1e6] (van Hasselt et al. 2016, eq. 11)."""
    var = state.second_moment - jnp.square(state.mean)
    return jnp.sqrt(jnp.clip(var, SIGMA_MIN**2, SIGMA_MAX**2))


def update_stats(state: PopArtState, targets: jax.Array, beta: float) -> PopArtState:
    """mu_i <- (1-b_i) mu_i + b_i mean(G_i), nu_i <- (1-b_i) nu_i + b_i mean(G_i^2), b_i = max(beta, 1/k_i) (van Hasselt 2016, eq. 11).

    `targets` is [T, n]: n value targets of every task. The step max(beta, 1/k) with k the update
    count makes the first statistics the sample's own (no bias towards the (0, 1) start), then an
    exponential moving average with step beta.
    """
    count = state.count + 1.0
    step = jnp.maximum(beta, 1.0 / count)
    mean = (1.0 - step) * state.mean + step * jnp.mean(targets, axis=-1)
    second = (1.0 - step) * state.second_moment + step * jnp.mean(jnp.square(targets), axis=-1)
    return state.replace(mean=mean, second_moment=second, count=count)


def art_rescale(w, b, mu, sigma, new_mu, new_sigma):
    """ART: w' = w sigma / sigma', b' = (sigma b + mu - mu') / sigma' (van Hasselt et al. 2016, eq. 6).

    The task axis is the last axis of `w` and of `b`: w may be [T] (affine layer) or [H, T] (one head
    column per task), b is [T].
    """
    return w * sigma / new_sigma, (sigma * b + mu - new_mu) / new_sigma


def normalize(targets: jax.Array, mu: jax.Array, sigma: jax.Array) -> jax.Array:
    """Normalised target n = (G - mu) / sigma."""
    return (targets - mu) / sigma


def denormalize(values: jax.Array, mu: jax.Array, sigma: jax.Array) -> jax.Array:
    """Unnormalised value V = sigma n + mu."""
    return sigma * values + mu


def task_outputs(state: PopArtState, head_out: jax.Array, task_id: jax.Array) -> jax.Array:
    """Normalised prediction of each sample for its own task: n = w_i h + b_i (scalar head) or head_i.

    `head_out` is the critic output [..., H] with H = 1 (scalar head) or T (one head per task);
    `task_id` is int [...] (broadcastable).
    """
    if head_out.shape[-1] == 1:
        return state.affine_w[task_id] * head_out[..., 0] + state.affine_b[task_id]
    task_id = jnp.broadcast_to(task_id, head_out.shape[:-1])
    return jnp.take_along_axis(head_out, task_id[..., None], axis=-1)[..., 0]


def unnormalized_value(state: PopArtState, head_out: jax.Array, task_id: jax.Array) -> jax.Array:
    """V_i(s) = sigma_i n_i(s) + mu_i, with the statistics of each sample's task."""
    sigma = popart_sigma(state)
    return denormalize(task_outputs(state, head_out, task_id), state.mean[task_id], sigma[task_id])


def update_and_rescale(
    state: PopArtState, critic_params, targets: jax.Array, beta: float
) -> tuple[PopArtState, dict]:
    """One PopArt step: update every task's statistics with its targets [T, n], then ART-rescale.

    Rescales the per-task affine when the critic head is scalar, or the per-task head columns of
    `critic_params["params"]["head"]` otherwise, so unnormalised predictions are preserved.
    """
    sigma = popart_sigma(state)
    new_state = update_stats(state, targets, beta)
    new_sigma = popart_sigma(new_state)
    head = critic_params["params"]["head"]
    if head["kernel"].shape[-1] == 1:
        w, b = art_rescale(state.affine_w, state.affine_b, state.mean, sigma, new_state.mean, new_sigma)
        return new_state.replace(affine_w=w, affine_b=b), critic_params
    kernel, bias = art_rescale(head["kernel"], head["bias"], state.mean, sigma, new_state.mean, new_sigma)
    params = {**critic_params["params"], "head": {**head, "kernel": kernel, "bias": bias}}
    return new_state, {**critic_params, "params": params}
