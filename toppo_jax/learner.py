"""The TOPPO learner: `make_train(config, env)` builds the pure, jittable `init` and `train_chunk`.

One call of `train_chunk` runs K iterations, each: a `lax.scan` rollout of the batched env with the
policy (`policy.make_policy`), a running observation-normaliser update, GAE with truncation
bootstrapping, PopArt's once-per-iteration statistics update and ART, then epochs of task-stratified
minibatches. In a minibatch, per-task actor and critic losses are vmapped over the task axis to give
per-task gradients of each side, each side's combiner turns them into one gradient, and optax applies
it. The training state is one dataclass (`TrainState`); evaluation, logging, checkpoints and every
other host concern live in the runtime layer (`loop`), which calls this module and is never called by it.

`config` is read by attribute (a `toppo_jax.config.Config`); this module imports no config, env or
host code (tests/test_layering.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from toppo_jax import combiners, networks as nets, policy as pol, popart, ppo

# The scalars a TrainState carries as traced values (so an in-jit sweep vmaps over them), and the
# config section each one's default comes from. `config.SWEEPABLE` is this table.
TRACED_HPARAMS = {
    "learning_rate": "ppo",
    "entropy_coef": "ppo",
    "popart_beta": "toppo",
    "cagrad_c": "toppo",
    "fairgrad_alpha": "toppo",
}


def default_hparams(config) -> dict[str, float]:
    """The traced scalars' values in `config`."""
    return {name: float(getattr(getattr(config, section), name)) for name, section in TRACED_HPARAMS.items()}


@struct.dataclass
class TrainState:
    actor_params: Any
    critic_params: Any
    actor_opt_state: Any
    critic_opt_state: Any
    popart: popart.PopArtState
    obs_stats: ppo.RunningStats
    env_state: Any
    rng: jax.Array
    env_steps: jax.Array  # int32 scalar, env steps taken by this seed
    iteration: jax.Array  # int32 scalar
    hparams: dict  # TRACED_HPARAMS scalars as float32 arrays: traced, so an in-jit sweep vmaps over them


@dataclasses.dataclass(frozen=True)
class Trainer:
    """What `make_train` returns: pure functions plus the sizes the host loop needs."""

    init: Callable[..., TrainState]  # init(rng, hparams=None): hparams default to the config's
    train_chunk: Callable[[TrainState], tuple[TrainState, dict]]
    networks: nets.Networks
    task_names: tuple[str, ...]
    env_steps_per_chunk: int


def _by_task(x: jax.Array, num_tasks: int) -> jax.Array:
    """Time-major [L, N, ...] (env i is task i // E) -> per-task [T, L * E, ...]."""
    length, num_envs = x.shape[:2]
    per = num_envs // num_tasks
    x = x.reshape((length, num_tasks, per) + x.shape[2:])
    return jnp.moveaxis(x, 1, 0).reshape((num_tasks, length * per) + x.shape[3:])


def _all_finite(tree) -> jax.Array:
    """True iff every entry of every leaf is finite."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


def shared_critic(critic_tree):
    """The critic parameters (or gradients) every task shares: without the per-task output layer
    (PopArt's per-task affine, or one head per task)."""
    per_task = popart.per_task_module(critic_tree)
    return {**critic_tree, "params": {k: v for k, v in critic_tree["params"].items() if k != per_task}}


def build_networks(config, observation_size: int, action_size: int, num_tasks: int) -> nets.Networks:
    """The actor and critic a config describes (also used to rebuild a saved run's actor)."""
    net_c = config.network
    return nets.make_networks(
        observation_size,
        action_size,
        num_tasks,
        actor_hidden=net_c.actor_hidden,
        critic_hidden=net_c.critic_hidden,
        activation=net_c.activation,
        critic_layer_norm=config.toppo.critic_layer_norm,
        ln_affine=net_c.ln_affine,
        per_task_heads=net_c.critic_heads == "per_task",
        popart_affine=config.toppo.popart,
        log_std_min=net_c.log_std_min,
        log_std_max=net_c.log_std_max,
        log_std_clip=net_c.log_std_clip,
        policy_std=net_c.policy_std,
    )


def make_train(config, env, mesh=None) -> Trainer:
    """Build the learner for `env` (the `envs.make_multitask` API: reset, step, sizes, task names).

    `mesh` (data parallel, one member): the per-task gradients are constrained to the replicated
    layout once computed, so each device computes the gradients of the samples it holds, one gather
    makes them whole, and the combiners run locally instead of exchanging every intermediate of
    their small task-by-task algebra across devices. The config must be valid (`config.validate`).
    """
    if mesh is None:
        replicate = lambda tree: tree  # noqa: E731
    else:
        whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        replicate = lambda tree: jax.lax.with_sharding_constraint(tree, whole)  # noqa: E731
    ppo_c, top, train_c = config.ppo, config.toppo, config.train
    num_tasks, num_envs = env.num_tasks, env.num_envs
    if num_envs != num_tasks * env.envs_per_task:
        raise ValueError(f"env has {num_envs} envs, expected num_tasks x envs_per_task = {num_tasks * env.envs_per_task}")
    base_obs = env.observation_size - num_tasks  # the one-hot task id is not normalised
    length, num_minibatches, k_iters = ppo_c.rollout_length, ppo_c.num_minibatches, train_c.iterations_per_chunk

    networks = build_networks(config, env.observation_size, env.action_size, num_tasks)
    # One stateless transformation without the learning rate (a traced hyperparameter, applied in
    # `apply_lr`); actor and critic keep separate optimizer states.
    tx = ppo.make_optimizer(None, ppo_c.adam_eps, ppo_c.max_grad_norm)
    defaults = default_hparams(config)
    act = pol.make_policy(networks.actor.apply, stochastic=True)
    task_of_env = jnp.asarray(np.arange(num_envs) // env.envs_per_task, jnp.int32)
    task_ids = jnp.arange(num_tasks, dtype=jnp.int32)
    # Advantages are normalised per task once, on the iteration's batch, or on each minibatch.
    per_iteration_norm = ppo.normalize_per_task if ppo_c.advantage_norm == "iteration" else (lambda a: a)

    def init(rng: jax.Array, hparams: dict | None = None) -> TrainState:
        hparams = {k: jnp.asarray(v, jnp.float32) for k, v in {**defaults, **(hparams or {})}.items()}
        rng, net_rng, env_rng = jax.random.split(rng, 3)
        actor_params, critic_params = networks.init(net_rng)
        return TrainState(
            actor_params=actor_params,
            critic_params=critic_params,
            actor_opt_state=tx.init(actor_params),
            critic_opt_state=tx.init(critic_params),
            popart=popart.init_popart(num_tasks),
            obs_stats=ppo.init_running_stats(base_obs),
            env_state=env.reset(env_rng),
            rng=rng,
            env_steps=jnp.zeros((), jnp.int32),
            iteration=jnp.zeros((), jnp.int32),
            hparams=hparams,
        )

    # ---------------------------------------------------------------------------- rollout

    def rollout(state: TrainState, rng: jax.Array):
        def env_step(env_state, key):
            obs = env_state.obs
            action, u, log_prob = act(state.actor_params, state.obs_stats, obs, key)
            nxt = env.step(env_state, action)
            transition = ppo.Transition(
                obs=obs,
                action_u=u,
                log_prob=log_prob,
                reward=nxt.reward,
                done=nxt.done,
                truncation=nxt.info["truncation"],
                final_obs=nxt.info["final_obs"],
                success=nxt.info["episode_success"],
            )
            return nxt, transition

        return jax.lax.scan(env_step, state.env_state, jax.random.split(rng, length))

    # ------------------------------------------------------------------------- minibatch

    def actor_loss(params, samples, key, entropy_coef):
        return ppo.actor_task_loss(params, networks.actor.apply, samples, key, ppo_c.clip_eps, entropy_coef)

    def critic_loss(params, popart_state, samples):
        return ppo.critic_task_loss(params, networks.critic.apply, popart_state, samples)

    per_task_actor_grads = jax.vmap(jax.grad(actor_loss, has_aux=True), in_axes=(None, 0, 0, None))

    def apply_lr(updates, lr):
        """theta <- theta - lr * adam(g): the learning-rate step of optax.adam, lr traced."""
        return jax.tree_util.tree_map(lambda u: -lr * u, updates)
    per_task_critic_grads = jax.vmap(jax.grad(critic_loss, has_aux=True), in_axes=(None, None, 0))

    def minibatch_step(carry, xs):
        actor_params, critic_params, actor_opt, critic_opt, popart_state, hp = carry
        samples, key = xs
        if ppo_c.advantage_norm == "minibatch":
            samples = samples._replace(advantage=ppo.normalize_per_task(samples.advantage))
        ent_key, actor_key, critic_key = jax.random.split(key, 3)
        actor_grads, (surrogate, entropy, kl, clip_frac, log_std) = replicate(per_task_actor_grads(
            actor_params, samples, jax.random.split(ent_key, num_tasks), hp["entropy_coef"]
        ))
        critic_grads, value_losses = replicate(per_task_critic_grads(critic_params, popart_state, samples))
        comb = dict(cagrad_c=hp["cagrad_c"], fairgrad_alpha=hp["fairgrad_alpha"])
        actor_dir, actor_gram = combiners.combine(top.actor_combiner, actor_grads, actor_key, **comb)
        critic_dir, critic_gram = combiners.combine(top.critic_combiner, critic_grads, critic_key, **comb)
        updates, actor_opt = tx.update(actor_dir, actor_opt, actor_params)
        actor_params = optax.apply_updates(actor_params, apply_lr(updates, hp["learning_rate"]))
        updates, critic_opt = tx.update(critic_dir, critic_opt, critic_params)
        critic_params = optax.apply_updates(critic_params, apply_lr(updates, hp["learning_rate"]))
        critic_diag = combiners.diagnostics_from_gram(critic_gram)
        # The same without the per-task output layer, whose entries are orthogonal across tasks by construction.
        body_diag = combiners.diagnostics(shared_critic(critic_grads))
        actor_diag = combiners.diagnostics_from_gram(actor_gram)
        metrics = {
            "policy_loss": jnp.mean(surrogate),
            "entropy": jnp.mean(entropy),
            "approx_kl": jnp.mean(kl),
            "clip_frac": jnp.mean(clip_frac),
            "log_std": log_std,  # per task: the pre-tanh policy's mean log-std on its samples
            "value_loss": jnp.mean(value_losses),
            "d1": critic_diag["d1"],
            "d2": critic_diag["d2"],
            "grad_norm": critic_diag["grad_norms"],
            "d1_shared": body_diag["d1"],
            "d2_shared": body_diag["d2"],
            "actor_d1": actor_diag["d1"],
            "actor_d2": actor_diag["d2"],
            "actor_grad_norm": actor_diag["grad_norms"],
            "actor_update_norm": optax.tree.norm(actor_dir),
            "critic_update_norm": optax.tree.norm(critic_dir),
            # Per task: did this minibatch's loss or gradient go non-finite (read by the host's NaN guard).
            "nonfinite_actor": ~(jnp.isfinite(surrogate) & jnp.isfinite(entropy) & jnp.isfinite(actor_diag["grad_norms"])),
            "nonfinite_critic": ~(jnp.isfinite(value_losses) & jnp.isfinite(critic_diag["grad_norms"])),
        }
        return (actor_params, critic_params, actor_opt, critic_opt, popart_state, hp), metrics

    # ------------------------------------------------------------------------- iteration

    def iteration(state: TrainState, _):
        rng, rollout_rng, epoch_rng = jax.random.split(state.rng, 3)
        env_state, traj = rollout(state, rollout_rng)

        # Normaliser first (Brax order): values, GAE and the update all see the same statistics.
        obs_stats = ppo.update_running_stats(state.obs_stats, traj.obs[..., :base_obs])

        def value(obs):
            head_out = networks.critic.apply(state.critic_params, ppo.normalize_obs(obs_stats, obs))
            return popart.unnormalized_value(state.popart, head_out, task_of_env)

        values = value(traj.obs)
        advantages, targets = ppo.gae(
            traj.reward,
            values,
            traj.done,
            traj.truncation,
            value(traj.final_obs),
            value(env_state.obs),
            ppo_c.gamma,
            ppo_c.gae_lambda,
        )
        batch = ppo.TaskSamples(
            obs=_by_task(ppo.normalize_obs(obs_stats, traj.obs), num_tasks),
            action_u=_by_task(traj.action_u, num_tasks),
            old_log_prob=_by_task(traj.log_prob, num_tasks),
            advantage=per_iteration_norm(_by_task(advantages, num_tasks)),
            target=_by_task(targets, num_tasks),
            task_id=task_ids,
        )

        def epoch(carry, key):
            perm_key, step_key = jax.random.split(key)
            minibatches = ppo.stratified_minibatches(perm_key, batch._replace(task_id=None), num_minibatches)
            minibatches = minibatches._replace(task_id=jnp.broadcast_to(task_ids, (num_minibatches, num_tasks)))
            return jax.lax.scan(minibatch_step, carry, (minibatches, jax.random.split(step_key, num_minibatches)))

        popart_state, critic_params = state.popart, state.critic_params
        if top.popart:
            # van Hasselt et al. 2016, Alg. 1: statistics and ART first, then SGD on the new targets;
            # once per iteration, from this iteration's targets (they are the same in every epoch).
            popart_state, critic_params = popart.update_and_rescale(popart_state, critic_params, batch.target, state.hparams["popart_beta"])
        carry = (state.actor_params, critic_params, state.actor_opt_state, state.critic_opt_state, popart_state, state.hparams)
        carry, metrics = jax.lax.scan(epoch, carry, jax.random.split(epoch_rng, ppo_c.num_epochs))
        flags = {k: jnp.any(metrics.pop(k), axis=(0, 1)) for k in ("nonfinite_actor", "nonfinite_critic")}
        metrics = jax.tree_util.tree_map(lambda x: jnp.mean(x, axis=(0, 1)), metrics)
        actor_params, critic_params, actor_opt, critic_opt, popart_state, _ = carry
        env_bad = ~(jnp.isfinite(traj.reward) & jnp.all(jnp.isfinite(traj.obs), axis=-1))
        flags.update(
            nonfinite_env=jnp.any(_by_task(env_bad, num_tasks), axis=1),
            nonfinite_params=~jnp.stack([_all_finite(t) for t in (actor_params, critic_params, popart_state, obs_stats)]),
        )

        done_by_task = _by_task(traj.done, num_tasks)
        metrics.update(
            episodes=jnp.sum(done_by_task, axis=1),
            successes=jnp.sum(done_by_task * _by_task(traj.success, num_tasks), axis=1),
            reward_mean=jnp.mean(traj.reward),
            explained_variance=ppo.explained_variance(values, targets),
            popart_sigma=popart.popart_sigma(popart_state),
            popart_mean=popart_state.mean,
            **flags,
        )
        new_state = TrainState(
            actor_params=actor_params,
            critic_params=critic_params,
            actor_opt_state=actor_opt,
            critic_opt_state=critic_opt,
            popart=popart_state,
            obs_stats=obs_stats,
            env_state=env_state,
            rng=rng,
            env_steps=state.env_steps + length * num_envs,
            iteration=state.iteration + 1,
            hparams=state.hparams,
        )
        return new_state, metrics

    def train_chunk(state: TrainState) -> tuple[TrainState, dict]:
        state, per_iter = jax.lax.scan(iteration, state, None, length=k_iters)
        metrics = {}
        for key, x in per_iter.items():
            if key in ("episodes", "successes"):
                metrics[key] = jnp.sum(x, axis=0)
            elif key in ("popart_sigma", "popart_mean"):
                metrics[key] = x[-1]
            elif key.startswith("nonfinite_"):
                metrics[key] = x  # per iteration: the host names the first iteration that went bad
            else:
                metrics[key] = jnp.mean(x, axis=0)
        metrics["env_steps"] = state.env_steps
        return state, metrics

    return Trainer(
        init=init,
        train_chunk=train_chunk,
        networks=networks,
        task_names=tuple(env.task_names),
        env_steps_per_chunk=k_iters * length * num_envs,
    )
