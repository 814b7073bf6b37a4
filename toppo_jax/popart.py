"""Per-task PopArt value normalisation (van Hasselt et al. 2016; multi-task form: Hessel et al. 2019).

Each task i keeps running first and second moments of its value targets, giving a shift mu_i and a
scale sigma_i. The critic's last linear map outputs one *normalised* value n_i(s) per task and is
trained by gradient descent on normalised targets (G - mu_i) / sigma_i; the value is denormalised as
V_i(s) = sigma_i n_i(s) + mu_i. When the statistics move, ART ("Adaptively Rescaling Targets")
rescales that last linear map so that every task's unnormalised prediction is unchanged ("Preserving
Outputs Precisely"). The last map is either one head column per task, or, when the critic has one
scalar head shared by all tasks, a per-task affine n_i = w_i h + b_i on top of it (the critic's
`popart` parameters, 2 per task, trained with the rest of the critic). With either, the gradient a
task sends into the shared critic is that of a unit-scale regression, whatever the scale of its
returns: that is what balances the per-task critic gradients.

The statistics are updated once per training iteration from that iteration's value targets (the
targets do not change between the epochs of an iteration), with step size beta per iteration; see
`update_stats`. Adam's moments are not rescaled, as in the papers. All functions are pure and jittable.
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


def init_popart(num_tasks: int) -> PopArtState:
    """Statistics (mu, nu) = (0, 1), so sigma = 1 and V = n before any update."""
    zeros = jnp.zeros((num_tasks,), jnp.float32)
    return PopArtState(mean=zeros, second_moment=jnp.ones((num_tasks,), jnp.float32), count=zeros)


def popart_sigma(state: PopArtState) -> jax.Array:
    """sigma_i = sqrt(nu_i - mu_i^2), clipped to [1e-4, 1e6] (van Hasselt et al. 2016, eq. 11)."""
    var = state.second_moment - jnp.square(state.mean)
    return jnp.sqrt(jnp.clip(var, SIGMA_MIN**2, SIGMA_MAX**2))


def update_stats(state: PopArtState, targets: jax.Array, beta: float) -> PopArtState:
    """mu_i <- (1-b_i) mu_i + b_i mean(G_i), nu_i <- (1-b_i) nu_i + b_i mean(G_i^2), b_i = max(beta, 1/k_i) (van Hasselt 2016, eq. 11).

    `targets` is [T, n]: the n value targets of every task in one training iteration. beta is the
    step size per update, i.e. per iteration: the statistics average the iterations with weights
    decaying as (1 - beta)^age, a horizon of about 1/beta iterations. The step max(beta, 1/k), with
    k the update count, makes them the plain average of all iterations so far until k = 1/beta (no
    bias towards the (0, 1) start; the first update sets them to the first iteration's own).
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


def task_outputs(head_out: jax.Array, task_id: jax.Array) -> jax.Array:
    """Normalised prediction n_i(s) of each sample for its own task i.

    `head_out` is the critic output [..., H]: H = T (PopArt's per-task outputs, from per-task heads or
    the per-task affine) or H = 1 (a plain scalar critic, used for every task); `task_id` is int [...]
    (broadcastable).
    """
    if head_out.shape[-1] == 1:
        return head_out[..., 0]
    task_id = jnp.broadcast_to(task_id, head_out.shape[:-1])
    return jnp.take_along_axis(head_out, task_id[..., None], axis=-1)[..., 0]


def unnormalized_value(state: PopArtState, head_out: jax.Array, task_id: jax.Array) -> jax.Array:
    """V_i(s) = sigma_i n_i(s) + mu_i, with the statistics of each sample's task."""
    sigma = popart_sigma(state)
    return denormalize(task_outputs(head_out, task_id), state.mean[task_id], sigma[task_id])


def per_task_module(critic_params) -> str | None:
    """Name of the critic's per-task output module ("popart": the affine, "head": one head per task), None for a plain scalar head."""
    params = critic_params["params"]
    if "popart" in params:
        return "popart"
    return "head" if params["head"]["kernel"].shape[-1] > 1 else None


def output_layer(critic_params) -> tuple[str, str, str]:
    """(module, weight, bias) names of the critic's per-task output map that ART rescales."""
    module = per_task_module(critic_params)
    if module == "popart":
        return "popart", "scale", "shift"
    if module == "head":
        return "head", "kernel", "bias"
    raise ValueError("PopArt needs per-task critic outputs: per-task heads or the per-task affine (Critic(task_affine=True))")


def update_and_rescale(
    state: PopArtState, critic_params, targets: jax.Array, beta: float
) -> tuple[PopArtState, dict]:
    """One PopArt step: update every task's statistics with its targets [T, n], then ART-rescale the
    per-task output map (`output_layer`) so every unnormalised prediction is preserved.

    A task's first update sets its statistics without ART: the untrained head's outputs hold nothing
    worth preserving, and preserving them would shrink w_i to 1/sigma_i (1e-3 for returns of scale
    1000), so that task's gradient into the shared critic would start ~1/sigma_i times that of a
    unit-scale task until Adam grows w_i back, by about one learning rate per step (docs/design.md, "PopArt").
    """
    sigma = popart_sigma(state)
    new_state = update_stats(state, targets, beta)
    new_sigma = popart_sigma(new_state)
    module, w_name, b_name = output_layer(critic_params)
    layer = critic_params["params"][module]
    w, b = art_rescale(layer[w_name], layer[b_name], state.mean, sigma, new_state.mean, new_sigma)
    first = state.count == 0  # [T], broadcast over the last (task) axis of w and b
    w, b = jnp.where(first, layer[w_name], w), jnp.where(first, layer[b_name], b)
    params = {**critic_params["params"], module: {**layer, w_name: w, b_name: b}}
    return new_state, {**critic_params, "params": params}
