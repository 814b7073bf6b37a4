"""The TOPPO trainer: `make_train(config, env)` builds pure, jittable `init` and `train_chunk`, and
`main()` is the host loop behind `python -m toppo_jax.train` (DESIGN.md contract 2).

One call of `train_chunk` runs K iterations, each: a `lax.scan` rollout of the batched env, a running
observation-normaliser update, GAE with truncation bootstrapping, then epochs of task-stratified
minibatches. Before the epochs, PopArt updates every task's return statistics with the iteration's
targets and ART-rescales the per-task value outputs; in a minibatch, per-task actor and critic losses are vmapped over the task axis to give per-task gradients of
each side, each side's combiner turns them into one gradient, and optax applies it. The training
state is one dataclass; the host loop only times, evaluates, logs (`logger`: metrics.jsonl and
wandb), checkpoints (`checkpoint`: the whole TrainState, so rerunning with the same --out resumes
exactly), plots (`plots`) and films (`video`). Seeds vmap through one compile (`--num-seeds`).

metrics.jsonl has one line per seed per chunk: `seed`, `env_steps`, `sps` (env steps of all seeds per
second of training, evaluation excluded), `perf/wall_s` (wall clock of the run so far, compiles and
evaluations included, carried over resumes), `perf/compile_s` (first line), `train/value_loss`
(normalised units), `train/policy_loss`, `train/entropy`, `train/approx_kl`, `train/clip_frac`,
`train/explained_variance`, `train/log_std/<task>` (mean log-std of the pre-tanh policy on the
task's samples), critic diagnostics `train/d1`, `train/d2`, `train/grad_norm/<task>`, actor
diagnostics `train/actor_d1`, `train/actor_d2`, `train/actor_grad_norm/<task>`, the combined update
norms, `train/popart_sigma/<task>`, `train/popart_mean/<task>`, training-episode success
`train/success_mean`, `train/success/<task>`, and after an evaluation `eval/success_mean`,
`eval/success_worst_<k>`, `eval/success/<task>`, `perf/eval_s`, and with `--eval-stochastic` the same under
`eval_stochastic/` for the policy acting with its samples instead of tanh(mean). `perf/compile_s` is on the first line of every
session (a resumed run compiles again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import re
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from toppo_jax import combiners, config as cfg, distributed, evaluate as ev, networks as nets, popart, ppo

# ------------------------------------------------------------------------------- train state


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
    hparams: dict  # cfg.SWEEPABLE scalars as float32 arrays: traced, so an in-jit sweep vmaps over them


@dataclasses.dataclass(frozen=True)
class Trainer:
    """What `make_train` returns: pure functions plus the sizes the host loop needs."""

    init: Callable[..., TrainState]  # init(rng, hparams=None): hparams default to the config's
    train_chunk: Callable[[TrainState], tuple[TrainState, dict]]
    evaluate: Callable[[TrainState], jax.Array] | None  # state -> per-task success [T]
    evaluate_stochastic: Callable[[TrainState], jax.Array] | None  # the same, acting with policy samples
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


def build_networks(config: cfg.Config, observation_size: int, action_size: int, num_tasks: int) -> nets.Networks:
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


def make_train(config: cfg.Config, env, eval_env=None, mesh=None) -> Trainer:
    """Build the trainer for `env` (the `envs.make_multitask` API); `eval_env` (eval_mode) enables evaluate.

    `mesh` (data parallel, one member): the per-task gradients are constrained to the replicated
    layout once computed, so each device computes the gradients of the samples it holds, one gather
    makes them whole, and the combiners run locally instead of exchanging every intermediate of
    their small task-by-task algebra across devices.
    """
    if mesh is None:
        replicate = lambda tree: tree  # noqa: E731
    else:
        whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        replicate = lambda tree: jax.lax.with_sharding_constraint(tree, whole)  # noqa: E731
    ppo_c, top, train_c = config.ppo, config.toppo, config.train
    num_tasks, num_envs = env.num_tasks, env.num_envs
    if num_envs != num_tasks * env.envs_per_task:
        raise cfg.ConfigError(f"env has {num_envs} envs, expected num_tasks x envs_per_task = {num_tasks * env.envs_per_task}")
    cfg.validate(cfg.replace(config, env={"envs_per_task": env.envs_per_task}), num_tasks)
    base_obs = env.observation_size - num_tasks  # the one-hot task id is not normalised
    length, num_minibatches, k_iters = ppo_c.rollout_length, ppo_c.num_minibatches, train_c.iterations_per_chunk

    networks = build_networks(config, env.observation_size, env.action_size, num_tasks)
    # One stateless transformation without the learning rate (a traced hyperparameter, applied in
    # `apply_lr`); actor and critic keep separate optimizer states.
    tx = ppo.make_optimizer(None, ppo_c.adam_eps, ppo_c.max_grad_norm)
    default_hparams = cfg.hparams(config)
    task_of_env = jnp.asarray(np.arange(num_envs) // env.envs_per_task, jnp.int32)
    task_ids = jnp.arange(num_tasks, dtype=jnp.int32)

    def init(rng: jax.Array, hparams: dict | None = None) -> TrainState:
        hparams = {k: jnp.asarray(v, jnp.float32) for k, v in {**default_hparams, **(hparams or {})}.items()}
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
            mean, log_std = networks.actor.apply(state.actor_params, ppo.normalize_obs(state.obs_stats, obs))
            action, u, log_prob = nets.sample_action(key, mean, log_std)
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
            advantage=ppo.normalize_per_task(_by_task(advantages, num_tasks)),
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

    evaluate = evaluate_stochastic = None
    if eval_env is not None:

        def bind(eval_fn):
            def run(state: TrainState) -> jax.Array:
                # A fixed key: the eval env's goals are fixed by eval_mode; it feeds its reset (and the samples).
                return eval_fn(state.actor_params, state.obs_stats, jax.random.PRNGKey(0))
            return run

        evaluate = bind(ev.make_evaluate(eval_env, networks))
        evaluate_stochastic = bind(ev.make_evaluate(eval_env, networks, stochastic=True))

    return Trainer(
        init=init,
        train_chunk=train_chunk,
        evaluate=evaluate,
        evaluate_stochastic=evaluate_stochastic,
        networks=networks,
        task_names=tuple(env.task_names),
        env_steps_per_chunk=k_iters * length * num_envs,
    )


# ---------------------------------------------------------------------------------- host side


def chunk_metrics(metrics: dict, task_names: Sequence[str]) -> dict[str, float]:
    """One seed's chunk metrics (numpy) -> stable names: train/<scalar>, train/<name>/<task>."""
    out = {}
    episodes = np.asarray(metrics["episodes"], np.float64)
    successes = np.asarray(metrics["successes"], np.float64)
    for key, value in metrics.items():
        value = np.asarray(value)
        if key in ("episodes", "successes", "env_steps") or key.startswith("nonfinite_"):
            continue
        if value.ndim == 0:
            out[f"train/{key}"] = float(value)
        else:
            out.update({f"train/{key}/{name}": float(v) for name, v in zip(task_names, value)})
    if episodes.sum() > 0:
        out["train/success_mean"] = float(successes.sum() / episodes.sum())
        for name, s, n in zip(task_names, successes, episodes):
            if n > 0:
                out[f"train/success/{name}"] = float(s / n)
    out["train/episodes"] = float(episodes.sum())
    return out


PARAM_GROUPS = ("actor parameters", "critic parameters", "PopArt statistics", "observation normaliser")


class TrainingDivergedError(RuntimeError):
    """Non-finite losses, gradients, rewards or parameters: the chunk's state is discarded, never saved."""


def nonfinite_report(metrics: dict, task_names: Sequence[str], first_env_step: int, steps_per_iteration: int) -> str | None:
    """One seed's chunk metrics -> None if all finite, else where it first went bad: the env step, the
    quantity and the task(s) (the first iteration of the chunk with a non-finite value is named)."""
    per_iter = {k: np.asarray(v) for k, v in metrics.items() if k.startswith("nonfinite_")}
    if not per_iter:
        return None
    bad = np.stack([v.reshape(v.shape[0], -1).any(axis=1) for v in per_iter.values()]).any(axis=0)
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    parts = []
    for key, what in (("nonfinite_env", "env reward/obs"), ("nonfinite_actor", "actor loss/gradient"), ("nonfinite_critic", "critic loss/gradient")):
        if key in per_iter and per_iter[key][i].any():
            tasks = [name for name, flag in zip(task_names, per_iter[key][i]) if flag]
            parts.append(f"{what} of task(s) {', '.join(tasks)}")
    if "nonfinite_params" in per_iter and per_iter["nonfinite_params"][i].any():
        parts.append(" and ".join(name for name, flag in zip(PARAM_GROUPS, per_iter["nonfinite_params"][i]) if flag))
    start = first_env_step + i * steps_per_iteration
    return f"non-finite {'; '.join(parts)} in the iteration of env steps {start:,}-{start + steps_per_iteration:,}"


def setup_compilation_cache() -> str:
    """Persistent XLA cache in $TOPPO_CACHE_DIR/jax (default ~/.cache/toppo_jax/jax); every compile is cached."""
    root = os.environ.get("TOPPO_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "toppo_jax")
    path = os.path.join(root, "jax")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def _condense(text: str) -> str:
    """tyro's boxed error -> one line: its message without the panel title, borders and help text."""
    keep = []
    for line in text.splitlines():
        line = line.strip().strip("│╭╮╰╯─|").strip()
        if not line or set(line) <= set("─-━ "):
            continue
        if line.startswith(("For full helptext", "usage:", "Argument helptext")):
            break
        keep.append(re.sub(r"\s+", " ", line))
    return " ".join(keep[1:] or keep) or "invalid arguments"


def _flag_value(argv: list[str], flag: str) -> tuple[str | None, list[str]]:
    """The value of `flag` in argv (`--flag V` or `--flag=V`), and argv without it; None if absent."""
    for i, arg in enumerate(argv):
        if arg == flag:
            if i + 1 >= len(argv):
                return "", argv[:i]
            return argv[i + 1], argv[:i] + argv[i + 2 :]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1], argv[:i] + argv[i + 1 :]
    return None, argv


def parse_args(argv: Sequence[str] | None = None) -> cfg.Config:
    """`--preset NAME` picks the method (toppo_jax/presets.py), `--tasks` the benchmark settings (mt10,
    mt50 or the plain defaults); every other flag overrides them."""
    import tyro

    from toppo_jax import presets

    argv = list(sys.argv[1:] if argv is None else argv)
    preset, argv = _flag_value(argv, "--preset")
    if preset == "":
        raise cfg.ConfigError(f"--preset needs a name; valid: {presets.describe()}")
    tasks, _ = _flag_value(argv, "--tasks")
    base = presets.get_preset(preset, tasks) if preset is not None else presets.benchmark_base(tasks)
    kwargs = dict(
        default=base,
        args=argv,
        prog="python -m toppo_jax.train",
        description=(f"Train TOPPO. --tasks mt10|mt50 picks that benchmark's settings and budget (2M env steps per task "
                     f"unless --total-env-steps is given). --preset NAME picks a method: {presets.describe()} "
                     "(python -m toppo_jax.presets lists them)."),
        config=(tyro.conf.OmitArgPrefixes,),
    )
    if "-h" in argv or "--help" in argv:
        return tyro.cli(cfg.Config, **kwargs)
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer), contextlib.redirect_stdout(buffer):
            return tyro.cli(cfg.Config, **kwargs)
    except SystemExit:
        raise cfg.ConfigError(_condense(buffer.getvalue())) from None


def device_mesh(config: cfg.Config, num_tasks: int):
    """The 1-D mesh ('data') over the first --devices devices of every process (one process: of this
    host); None for one device in one process. Process p holds the p-th block of the mesh."""
    from jax.sharding import Mesh

    available = jax.local_devices()
    n = config.train.devices or len(available)
    if n > len(available):
        raise cfg.ConfigError(
            f"--devices {n}: this host has {len(available)} {jax.default_backend()} device(s); choose 1..{len(available)} (0: all)"
        )
    processes = jax.process_count()
    if n == 1 and processes == 1:
        return None
    label = f"--devices {n}" if processes == 1 else f"--devices {n} x {processes} processes = {n * processes} devices"
    cfg.check_device_split(config, n * processes, label)  # divisibility by the resolved count
    by_process = {}
    for device in jax.devices():
        by_process.setdefault(device.process_index, []).append(device)
    devices = [d for p in sorted(by_process) for d in sorted(by_process[p], key=lambda d: d.id)[:n]]
    return Mesh(np.asarray(devices), ("data",))


def state_shardings(abstract, mesh, num_members: int):
    """Where each TrainState leaf lives on the mesh: the member axis split (several members), else the
    env axis of the env state split and everything else (params, optimizer, PopArt, ...) replicated."""
    if mesh is None:
        return None
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    split, whole = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())

    def by_leading_axis(x):
        return split if x.ndim >= 1 and x.shape[0] % mesh.size == 0 else whole

    if num_members > 1:
        return jax.tree_util.tree_map(by_leading_axis, abstract)
    return jax.tree_util.tree_map(lambda _: whole, abstract).replace(env_state=jax.tree_util.tree_map(by_leading_axis, abstract.env_state))


def _default_make_env(tasks, envs_per_task, **kwargs):
    from envs import make_multitask

    return make_multitask(list(tasks), envs_per_task, **kwargs)


def _fmt(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else str(x)


def _crossed(every: int, env_steps: int, steps_per_chunk: int) -> bool:
    """Whether the chunk that ended at `env_steps` crossed a multiple of `every` (0: never)."""
    return every > 0 and env_steps // every > (env_steps - steps_per_chunk) // every


def run(
    config: cfg.Config,
    tasks: Sequence[str],
    make_env: Callable = _default_make_env,
    compiler_options: dict | None = None,
) -> list[dict]:
    """Train one config (num_seeds seeds vmapped) in the run directory DIR = --out; returns every
    metrics line of the run (earlier sessions included).

    Writes DIR/config.json, DIR/metrics.jsonl, DIR/checkpoints/ (orbax; every --checkpoint-every env
    steps, at every evaluation and at the end), DIR/plots/*.png (redrawn at every evaluation),
    DIR/videos/*.mp4 (MuJoCo port only) and DIR/wandb/. Rerunning with the same DIR resumes from the
    latest checkpoint: metrics.jsonl keeps its lines up to the checkpoint's env steps and the run
    continues as if it had never stopped (bit for bit on CPU; `sps` and `perf/*` are timings). A DIR
    of another config raises checkpoint.CheckpointMismatchError unless --overwrite.
    `compiler_options` go to XLA for the training and evaluation programs (tests lower the CPU
    backend's optimisation level to compile faster).
    """
    from rich.console import Console

    from toppo_jax import checkpoint as ckpt

    train_c = config.train
    primary = jax.process_index() == 0  # in a multi-process run, process 0 alone writes the run's files
    console = Console(stderr=True, quiet=not primary)
    warned: set[str] = set()

    def warn_once(kind: str, message: str) -> None:
        if kind not in warned:
            warned.add(kind)
            console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    cache_dir = setup_compilation_cache()
    out = Path(train_c.out)
    if not primary:
        return _run_locked(config, tasks, make_env, compiler_options, out, console, warn_once, cache_dir, primary)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise cfg.ConfigError(f"--out {out} is not writable ({err.strerror or err}); choose another --out") from None
    lock = ckpt.RunLock(out)  # a second run on the same --out stops here
    try:
        return _run_locked(config, tasks, make_env, compiler_options, out, console, warn_once, cache_dir, primary)
    finally:
        lock.release()


class _GracefulStop:
    """SIGTERM/SIGINT -> a request the host loop honours after the current chunk (a second signal
    interrupts at once). Installed only in the main thread, and the previous handlers come back on exit."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signal_name is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
        self.signal_name = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def _run_locked(config, tasks, make_env, compiler_options, out, console, warn_once, cache_dir, primary):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from toppo_jax import checkpoint as ckpt
    from toppo_jax import logger as logs
    from toppo_jax import plots
    from toppo_jax import video

    env_c, train_c = config.env, config.train
    # --overwrite: process 0 clears the directory while the others wait; else every process reads it.
    may_resume = ckpt.prepare_run_dir(out, config, tasks) if primary or not train_c.overwrite else False
    distributed.barrier("toppo-prepare-run-dir")
    # Members: every sweep point (one if no --sweep) x every seed, vmapped through one compile.
    points = cfg.sweep_points(train_c.sweep)
    members = [(point, train_c.seed + j) for point in (points or [{}]) for j in range(train_c.num_seeds)]
    num_members = len(members)
    mesh = device_mesh(config, len(tasks))
    # With one member the envs are split over the devices (each steps its share); with several, the members are.
    env_mesh = {"mesh": mesh} if mesh is not None and num_members == 1 else {}
    eval_mesh = env_mesh if mesh is not None and train_c.eval_episodes % mesh.size == 0 else {}
    env = make_env(tasks, env_c.envs_per_task, seed=train_c.seed, impl=env_c.impl, staggered=env_c.staggered, **env_mesh)
    eval_env = make_env(tasks, train_c.eval_episodes, seed=train_c.seed, impl=env_c.impl, staggered=False, eval_mode=True,
                        **eval_mesh)
    seeds = [seed for _, seed in members]
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    member_hparams = {
        k: jnp.asarray([cfg.hparams(cfg.with_hparams(config, point))[k] for point, _ in members], jnp.float32) for k in cfg.SWEEPABLE
    }
    if num_members == 1:
        keys, member_hparams = keys[0], {k: v[0] for k, v in member_hparams.items()}
    trainer = make_train(config, env, eval_env, mesh=env_mesh.get("mesh"))

    # One member runs unbatched so envs whose step is a host callback need no vmap rule.
    if num_members == 1:
        init_fn, chunk_fn, eval_fn = (lambda k: trainer.init(k, member_hparams)), trainer.train_chunk, trainer.evaluate
        noisy_eval_fn = trainer.evaluate_stochastic
    else:
        vmapped_init, chunk_fn, eval_fn, noisy_eval_fn = (
            jax.vmap(f) for f in (trainer.init, trainer.train_chunk, trainer.evaluate, trainer.evaluate_stochastic))
        init_fn = lambda k: vmapped_init(k, member_hparams)  # noqa: E731

    def per_seed(tree, i):
        return jax.tree_util.tree_map(lambda x: np.asarray(x) if num_members == 1 else np.asarray(x)[i], tree)

    fingerprint = ckpt.config_fingerprint(cfg.to_dict(config), tasks)
    config_hash = ckpt.config_hash(fingerprint)
    layout = ckpt.layout(trainer.task_names, env.envs_per_task, num_members)
    abstract = jax.eval_shape(init_fn, keys)
    shardings = state_shardings(abstract, mesh, num_members)
    if shardings is not None:
        # Checkpoints restore straight into these shardings, whatever mesh wrote them.
        abstract = jax.tree_util.tree_map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), abstract, shardings)
    # Metrics, evaluation results and videos' parameters are read by the host: replicated on every process.
    replicated = None if mesh is None else jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    checkpointer = ckpt.Checkpointer(out / ckpt.CHECKPOINTS, keep=train_c.keep_checkpoints)
    warn = lambda message: console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)  # noqa: E731
    logger = None
    with _GracefulStop() as stopper:
        try:
            # Restore before anything is written, so a mismatching checkpoint leaves the directory as it was.
            restored = checkpointer.restore(abstract, layout, warn=warn) if may_resume else None
            steps_per_chunk = trainer.env_steps_per_chunk
            steps_per_iteration = steps_per_chunk // train_c.iterations_per_chunk
            num_chunks = max(1, math.ceil(cfg.total_env_steps(config, len(tasks)) / steps_per_chunk))
            lr_scale = 1.0
            if restored is not None:
                state, meta = restored
                start = int(meta["chunk"]) + 1
                lr_scale = float(meta.get("lr_scale", 1.0))
                run_id = meta.get("wandb_run_id") or logs.new_run_id()
                prior = logs.truncate_metrics(out / logs.METRICS_FILE, int(meta["env_steps"])) if primary else []
                note = f"resuming {out} from its checkpoint at {int(meta['env_steps']):,} env steps (chunk {start})"
                if lr_scale != 1.0:
                    note += f", learning rate x {lr_scale:g} after NaN rollbacks"
                console.print(note, soft_wrap=True)
                if start >= num_chunks:
                    note = f"{out} is complete at {start * steps_per_chunk:,} env steps; raise --total-env-steps to train further"
                    console.print(note, soft_wrap=True)
                    return prior
            else:
                if primary and logs.read_metrics(out / logs.METRICS_FILE):
                    console.print(f"{out} has metrics but no checkpoint: starting afresh (metrics.jsonl is rewritten)", soft_wrap=True)
                state = jax.jit(init_fn, compiler_options=compiler_options, out_shardings=shardings)(keys)
                # A wandb sweep agent names the run (WANDB_RUN_ID): adopt it so the sweep sees this run.
                start, run_id, prior = 0, os.environ.get("WANDB_RUN_ID") or logs.new_run_id(), []

            actor_params, critic_params = jax.eval_shape(trainer.networks.init, jax.random.PRNGKey(0))
            versions, device = logs.versions(), logs.device_info()
            info = {
                "config": cfg.to_dict(config),
                "tasks": list(tasks),
                "seeds": seeds,
                **({"sweep": points, "members": [{"seed": seed, **point} for point, seed in members]} if points else {}),
                "config_hash": config_hash,
                "num_params": {"actor": nets.count_params(actor_params), "critic": nets.count_params(critic_params)},
                "env_steps_per_chunk": trainer.env_steps_per_chunk,
                "physics": getattr(env, "impl", "none"),  # the backend --impl resolved to (auto: by platform)
                "jax": jax.__version__,
                "devices": [str(d) for d in jax.devices()],
                "data_parallel_devices": 1 if mesh is None else mesh.size,
                "processes": jax.process_count(),
                "versions": versions,
                **device,
                "wandb_run_id": run_id,
                "compilation_cache": cache_dir,
            }
            if primary:
                (out / "config.json").write_text(json.dumps(info, indent=2))

            with warnings.catch_warnings():
                # CPU backends cannot reuse donated buffers and say so on every call.
                warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
                t0 = time.perf_counter()
                # Compiled for the abstract state, so a fresh and a resumed run run the same program.
                outs = None if shardings is None else (shardings, replicated)
                chunk = jax.jit(chunk_fn, donate_argnums=0, compiler_options=compiler_options,
                                out_shardings=outs).lower(abstract).compile()
                evaluate, evaluate_noisy = (
                    jax.jit(f, compiler_options=compiler_options, out_shardings=replicated).lower(abstract).compile()
                    if f is not None else None
                    for f in (eval_fn, noisy_eval_fn if train_c.eval_stochastic else None))
                compile_s = time.perf_counter() - t0
            console.print(f"physics: {info['physics']} (--impl {env_c.impl}) on {device['backend']}; compiled in {compile_s:.0f}s",
                          highlight=False, soft_wrap=True)
            wandb_run = logs.Wandb(
                train_c.wandb and primary,
                project=train_c.wandb_project,
                run_id=run_id,
                run_dir=out,
                name=out.name,
                config={k: v for k, v in info.items() if k != "compilation_cache"},
                warn=lambda message: warn_once("wandb", message),
            )
            wandb_run.summary({"perf/compile_s": compile_s})
            logger = logs.RunLogger(out, resume=restored is not None, wandb_run=wandb_run) if primary else None

            film_requested = video.resolve_video_tasks(train_c.video_tasks, trainer.task_names)
            videos_on = train_c.videos
            if videos_on and getattr(env, "envs", None) is None:
                note = "videos: skipped, they need the MuJoCo port (this env has no MuJoCo task models)"
                console.print(note, soft_wrap=True)
                videos_on = False

            def film(state, lines, env_steps) -> bool:
                """Videos of seed 0's policy (DIR/videos, wandb); False when no more should be tried."""
                evals = [line for line in lines if "eval/success_mean" in line and line["seed"] == seeds[0]]
                tasks_to_film = video.pick_tasks(trainer.task_names, evals[-1] if evals else None, film_requested)
                gather = (lambda tree: tree) if replicated is None else jax.jit(lambda tree: tree, out_shardings=replicated)
                params, stats = per_seed(gather((state.actor_params, state.obs_stats)), 0)
                if not primary:
                    return distributed.from_primary(True)
                try:
                    paths = video.record(
                        trainer.task_names, tasks_to_film, seed=train_c.seed, impl=env_c.impl,
                        actor_apply=trainer.networks.actor.apply, actor_params=params, obs_stats=stats,
                        out_dir=out / video.VIDEOS, env_steps=env_steps,
                    )  # fmt: skip
                except video.VideoUnavailable as err:
                    console.print(f"videos: skipped, {err}", soft_wrap=True)
                    return distributed.from_primary(False)
                except Exception as err:  # noqa: BLE001 - a video must never stop training
                    warn_once("video", f"video not made ({type(err).__name__}: {err}); no more videos this run")
                    return distributed.from_primary(False)
                for task, path in zip(tasks_to_film, paths):
                    wandb_run.video(f"video/{task}", path, step=env_steps, caption=f"{task} at {env_steps:,} env steps")
                return distributed.from_primary(True)

            def save(state, c, env_steps, success_mean):
                meta = {
                    "chunk": c,
                    "env_steps": env_steps,
                    "wandb_run_id": run_id,
                    "config_hash": config_hash,
                    "layout": layout,
                    "eval/success_mean": success_mean,
                    "lr_scale": lr_scale,
                }
                checkpointer.save(env_steps, state, meta, success_mean=success_mean)

            rollbacks_left = train_c.nan_rollbacks
            lines: list[dict] = list(prior)
            columns = (
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=console) as progress:
                bar = progress.add_task(
                    "toppo", total=num_chunks * steps_per_chunk, completed=start * steps_per_chunk, status=f"compile {compile_s:.1f}s"
                )
                c, first_of_session = start, True
                # Wall clock of the run, compiles and evaluations included, carried over resumes.
                wall_before = float(prior[-1].get("perf/wall_s", 0.0)) if prior else 0.0
                while c < num_chunks:
                    t_start = time.perf_counter()
                    state, metrics = chunk(state)
                    metrics = jax.device_get(metrics)
                    elapsed = time.perf_counter() - t_start
                    env_steps = (c + 1) * steps_per_chunk
                    # NaN guard: a chunk with a non-finite value is never logged or saved.
                    bad = [(seed, nonfinite_report(per_seed(metrics, i), trainer.task_names, c * steps_per_chunk, steps_per_iteration))
                           for i, seed in enumerate(seeds)]  # fmt: skip
                    bad = [f"seed {seed}: {r}" for seed, r in bad if r]
                    if bad:
                        last_good = checkpointer.latest_step()
                        what = "; ".join(bad)
                        if rollbacks_left > 0 and last_good is not None:
                            rollbacks_left -= 1
                            lr_scale *= 0.5
                            state, meta = checkpointer.restore(abstract, layout, warn=warn)
                            # The learning rate is a traced hyperparameter of the state: halve it there.
                            hp = dict(state.hparams)
                            hp["learning_rate"] = hp["learning_rate"] * 0.5
                            state = state.replace(hparams=hp)
                            warn(
                                f"{what}; rolled back to the checkpoint at {int(meta['env_steps']):,} env steps with the "
                                f"learning rate x {lr_scale:g} ({rollbacks_left} rollback(s) left)"
                            )
                            c = int(meta["chunk"]) + 1
                            if logger is not None:
                                logger.rewind(int(meta["env_steps"]))
                            lines = [line for line in lines if line["env_steps"] <= int(meta["env_steps"])]
                            progress.update(bar, completed=c * steps_per_chunk)
                            continue
                        kept = f"the last good checkpoint ({last_good:,} env steps) is kept in {checkpointer.directory}" if last_good else "no checkpoint had been written"
                        raise TrainingDivergedError(
                            f"training diverged: {what}; {kept}; nothing of this chunk was saved "
                            f"(--nan-rollbacks N retries from the last checkpoint with a halved learning rate)"
                        )
                    last = c == num_chunks - 1
                    evaluate_now = _crossed(train_c.eval_every, env_steps, steps_per_chunk) or last
                    t_eval = time.perf_counter()
                    eval_success = jax.device_get(evaluate(state)) if evaluate_now else None
                    noisy_success = jax.device_get(evaluate_noisy(state)) if evaluate_now and evaluate_noisy is not None else None
                    eval_s = time.perf_counter() - t_eval
                    wall_s = wall_before + time.perf_counter() - t0
                    status, chunk_lines = [], []
                    for i, seed in enumerate(seeds):
                        m = per_seed(metrics, i)
                        line = {"seed": seed, "env_steps": int(m["env_steps"]), "sps": steps_per_chunk * num_members / elapsed,
                                "perf/wall_s": wall_s}
                        if points:
                            line["member"] = i
                            line.update({f"hp/{k}": v for k, v in members[i][0].items()})
                        if first_of_session:
                            line["perf/compile_s"] = compile_s
                        line.update(chunk_metrics(m, trainer.task_names))
                        if eval_success is not None:
                            line.update(ev.summarize(per_seed(eval_success, i), trainer.task_names, train_c.worst_k))
                            line["perf/eval_s"] = eval_s
                            status.append(f"eval {_fmt(line['eval/success_mean'])}")
                        if noisy_success is not None:
                            line.update(ev.summarize(per_seed(noisy_success, i), trainer.task_names, train_c.worst_k,
                                                     prefix="eval_stochastic"))
                        chunk_lines.append(line)
                    first_of_session = False
                    if logger is not None:
                        logger.log(chunk_lines)
                    lines.extend(chunk_lines)
                    if evaluate_now and primary:
                        try:
                            plots.plot_run(out)
                        except Exception as err:  # noqa: BLE001 - a plot must never stop training
                            warn_once("plots", f"plots not drawn ({type(err).__name__}: {err})")
                    # The checkpoint follows the metrics of its chunk, so a resume truncates, never loses, lines.
                    stopping = distributed.any_process(stopper.signal_name is not None)  # every process stops at the same chunk
                    if evaluate_now or last or stopping or _crossed(train_c.checkpoint_every, env_steps, steps_per_chunk):
                        save(state, c, env_steps, None if eval_success is None else float(np.mean(eval_success)))
                    if stopping:
                        progress.stop()
                        console.print(
                            f"received {stopper.signal_name or 'a stop signal (on another process)'}: stopped after "
                            f"{env_steps:,} env steps with a checkpoint in "
                            f"{checkpointer.directory}; rerun the same command to resume",
                            soft_wrap=True,
                        )
                        break
                    if videos_on and (last or _crossed(train_c.video_every, env_steps, steps_per_chunk)):
                        videos_on = film(state, lines, env_steps)
                    progress.update(bar, advance=steps_per_chunk, status=f"{chunk_lines[-1]['sps']:,.0f} sps " + " ".join(status))
                    c += 1
        finally:
            if logger is not None:
                logger.close()
            checkpointer.close()
    return lines


def resolve_tasks(spec: str, task_catalog=None) -> tuple[str, ...]:
    """Task names for --tasks: from `task_catalog` = (groups, names) when given (tests), else the
    port's registry (`envs.resolve_tasks`: mt10, mt50, names with or without -v3, ported tasks only)."""
    if task_catalog is not None:
        return cfg.resolve_tasks(spec, *task_catalog)
    import envs

    try:
        return tuple(envs.resolve_tasks(spec))
    except ValueError as err:
        raise cfg.ConfigError(f"--tasks {spec!r}: {err}") from None


def main(
    argv: Sequence[str] | None = None,
    *,
    make_env: Callable | None = None,
    task_catalog=None,
    compiler_options: dict | None = None,
) -> int:
    """CLI entry. Bad input: one line on stderr naming the value and the choices, exit code 2.
    Divergence (non-finite values, see `nonfinite_report`): one line naming where, exit code 3.
    SIGTERM/SIGINT: the current chunk ends, a checkpoint is written, exit code 0.

    `make_env` (signature of `envs.make_multitask`), `task_catalog` and `compiler_options` (see
    `run`) let tests inject another env and compile faster.
    """
    try:
        config = parse_args(argv)
        tasks = resolve_tasks(config.env.tasks, task_catalog)
        cfg.validate(config, len(tasks))
        from toppo_jax.video import resolve_video_tasks

        resolve_video_tasks(config.train.video_tasks, tasks)
        join_cluster(config.train.distributed)
        if make_env is None:
            check_impl(config.env.impl)
        # A run directory of another config, or a checkpoint of another layout, is bad input too.
        run(config, tasks, make_env or _default_make_env, compiler_options)
    except cfg.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDivergedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    return 0


def join_cluster(mode: str) -> distributed.Cluster:
    """Join the run's other processes (multi-host; toppo_jax/distributed.py) before any JAX backend starts;
    a launch that cannot be joined is bad input."""
    try:
        return distributed.initialize(mode)
    except distributed.DistributedError as err:
        raise cfg.ConfigError(f"--distributed {mode}: {err}") from None


def check_impl(impl: str) -> None:
    """A physics backend that cannot run here is bad input (ConfigError), found before anything compiles."""
    from envs import backends

    try:
        backends.check_impl(impl)
    except (backends.BackendUnavailableError, ValueError) as err:
        raise cfg.ConfigError(f"--impl {impl!r}: {err}") from None


if __name__ == "__main__":
    sys.exit(main())
