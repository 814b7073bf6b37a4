"""Actor and critic networks, and the tanh-squashed Gaussian policy they parameterise.

Both networks read the observation as given (the one-hot task id is already its last `num_tasks`
entries) and share their parameters across tasks. The actor is a plain MLP whose head outputs the
mean and log-std of a Gaussian over the pre-squash action u (a = tanh u). The critic is an MLP whose
hidden layers may be pre-activation LayerNorm blocks (Linear -> LayerNorm -> activation, "LN-c" of
TOPPO's Critic Balancing), with either one scalar head shared by all tasks (with PopArt, a trained
per-task affine maps it to each task's normalised value: `PerTaskAffine`, `popart.py`) or one head
per task. The default sizes are the
only MLP that matches TOPPO's reported 717K parameters on MT50 (docs/design.md, "TOPPO: what is known").
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LOG_STD_MIN = -5.0
# std <= 1 before tanh. At 2 (std 7.4, the Meta-World+ reference's bound) TOPPO learned states where
# the squashed actions are nearly bang-bang noise, and the deterministic tanh(mean) failed tasks the
# noisy policy solved (drawer-open: 0/50 vs 45/50 on the same goals; README, "Deterministic vs sampled actions").
LOG_STD_MAX = 0.0

ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh, "elu": nn.elu, "swish": nn.swish, "gelu": nn.gelu}


LOG_STD_CLIPS = ("hard", "soft")
POLICY_STDS = ("state", "param")


def soft_clip(x: jax.Array, low: float, high: float) -> jax.Array:
    """y = low + softplus(high - softplus(high - x) - low): ~x inside [low, high], bounded, gradient never 0."""
    return low + jax.nn.softplus(high - jax.nn.softplus(high - x) - low)


def _hidden_init():
    return nn.initializers.orthogonal(math.sqrt(2.0))


class Actor(nn.Module):
    """obs -> (mean, log_std) of the Gaussian over the pre-tanh action."""

    hidden: Sequence[int]
    action_size: int
    activation: str = "relu"
    log_std_min: float = LOG_STD_MIN
    log_std_max: float = LOG_STD_MAX
    log_std_clip: str = "hard"  # hard: clip (no gradient past a bound) | soft: soft_clip
    std: str = "state"  # state: the head outputs log-std too | param: one learned log-std per action dim

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        act = ACTIVATIONS[self.activation]
        x = obs
        for width in self.hidden:
            x = act(nn.Dense(width, kernel_init=_hidden_init())(x))
        # A small final gain keeps the initial policy near mean 0, std 1 for every task.
        if self.std == "param":
            mean = nn.Dense(self.action_size, kernel_init=nn.initializers.orthogonal(0.01), name="head")(x)
            raw_log_std = jnp.broadcast_to(self.param("log_std", nn.initializers.zeros, (self.action_size,)), mean.shape)
        else:
            out = nn.Dense(2 * self.action_size, kernel_init=nn.initializers.orthogonal(0.01), name="head")(x)
            mean, raw_log_std = jnp.split(out, 2, axis=-1)
        if self.log_std_clip == "soft":
            return mean, soft_clip(raw_log_std, self.log_std_min, self.log_std_max)
        return mean, jnp.clip(raw_log_std, self.log_std_min, self.log_std_max)


class PerTaskAffine(nn.Module):
    """n_i = w_i h + b_i: one trained scale and shift per task on a scalar output h (PopArt's per-task output layer)."""

    num_tasks: int

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.ones, (self.num_tasks,))
        shift = self.param("shift", nn.initializers.zeros, (self.num_tasks,))
        return h * scale + shift


class Critic(nn.Module):
    """obs -> [..., H] normalised value outputs: H = num_heads (1 or the number of tasks), or the
    number of tasks through a per-task affine on the scalar head (`task_affine`, PopArt)."""

    hidden: Sequence[int]
    num_heads: int = 1
    layer_norm: bool = True
    ln_affine: bool = False
    activation: str = "relu"
    task_affine: int = 0  # > 0: that many tasks' PopArt affine on the scalar head (num_heads must be 1)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        x = obs
        for width in self.hidden:
            x = nn.Dense(width, kernel_init=_hidden_init())(x)
            if self.layer_norm:
                x = nn.LayerNorm(use_bias=self.ln_affine, use_scale=self.ln_affine)(x)
            x = act(x)
        out = nn.Dense(self.num_heads, kernel_init=nn.initializers.orthogonal(1.0), name="head")(x)
        if self.task_affine:
            return PerTaskAffine(self.task_affine, name="popart")(out)
        return out


@dataclasses.dataclass(frozen=True)
class Networks:
    """The two modules plus the sizes the trainer needs to call them."""

    actor: Actor
    critic: Critic
    obs_size: int
    action_size: int
    num_tasks: int

    @property
    def per_task_heads(self) -> bool:
        return self.critic.num_heads > 1

    def init(self, rng: jax.Array) -> tuple[dict, dict]:
        actor_rng, critic_rng = jax.random.split(rng)
        dummy = jnp.zeros((1, self.obs_size), jnp.float32)
        return self.actor.init(actor_rng, dummy), self.critic.init(critic_rng, dummy)


def make_networks(
    obs_size: int,
    action_size: int,
    num_tasks: int,
    *,
    actor_hidden: Sequence[int] = (400, 400, 400),
    critic_hidden: Sequence[int] = (400, 400, 400),
    activation: str = "relu",
    critic_layer_norm: bool = True,
    ln_affine: bool = False,
    per_task_heads: bool = False,
    popart_affine: bool = False,
    log_std_min: float = LOG_STD_MIN,
    log_std_max: float = LOG_STD_MAX,
    log_std_clip: str = "hard",
    policy_std: str = "state",
) -> Networks:
    actor = Actor(hidden=tuple(actor_hidden), action_size=action_size, activation=activation,
                  log_std_min=log_std_min, log_std_max=log_std_max, log_std_clip=log_std_clip, std=policy_std)
    critic = Critic(
        hidden=tuple(critic_hidden),
        num_heads=num_tasks if per_task_heads else 1,
        layer_norm=critic_layer_norm,
        ln_affine=ln_affine,
        activation=activation,
        task_affine=num_tasks if popart_affine and not per_task_heads else 0,
    )
    return Networks(actor, critic, obs_size, action_size, num_tasks)


def count_params(params) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))


def gaussian_log_prob(u: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """log N(u; mean, exp(log_std)) summed over action dims (the tanh Jacobian cancels in PPO ratios)."""
    z = (u - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)


def tanh_log_det_jacobian(u: jax.Array) -> jax.Array:
    """log|det d tanh(u)/du| = sum_j log(1 - tanh(u_j)^2) = sum_j 2 (log 2 - u_j - softplus(-2 u_j))."""
    return jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)


def sample_action(rng: jax.Array, mean: jax.Array, log_std: jax.Array):
    """Draw u ~ N(mean, std); return (a = tanh u, u, log N(u)). u is stored so ratios avoid atanh."""
    u = mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape, mean.dtype)
    return jnp.tanh(u), u, gaussian_log_prob(u, mean, log_std)


def squashed_entropy(rng: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """H[tanh u] ~= sum_j (1/2 log(2 pi e) + log_std_j) + log|det J_tanh(u')|, u' = mean + std eps (one reparameterised sample, as Brax)."""
    gaussian = jnp.sum(0.5 * jnp.log(2.0 * jnp.pi * jnp.e) + log_std, axis=-1)
    u = mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape, mean.dtype)
    return gaussian + tanh_log_det_jacobian(u)


def deterministic_action(mean: jax.Array) -> jax.Array:
    """Evaluation action a = tanh(mean)."""
    return jnp.tanh(mean)
