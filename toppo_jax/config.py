"""Frozen dataclass configuration of a TOPPO run, its validation, and task-list resolution.

Defaults reproduce the paper setting as far as it is known (docs/design.md, "TOPPO: what is known"): the 717K-parameter
networks, Meta-World+ reference PPO settings, per-task PopArt and a LayerNorm critic. What the paper
does not say (which combiner on which side, PopArt step size, rollout shape) is a stated guess to be
settled by sweeps. Field names are unique across sections so the CLI exposes them as flat flags
(`--tasks`, `--seed`, `--total-env-steps`, ...). `validate` is the edge check: it raises `ConfigError`
with one line naming the bad value and the valid choices.
"""

from __future__ import annotations

import dataclasses
import itertools
import difflib
from typing import Mapping, Sequence

from toppo_jax.combiners import COMBINERS
from toppo_jax.learner import TRACED_HPARAMS, default_hparams
from toppo_jax.ppo import ADVANTAGE_NORMS
from toppo_jax.networks import ACTIVATIONS, LOG_STD_CLIPS, LOG_STD_MAX, LOG_STD_MIN, POLICY_STDS

IMPLS = ("mujoco", "warp", "jax", "auto")
REWARD_VERSIONS = ("v2", "v1")  # the port's envs.tasks.base.REWARD_VERSIONS
CRITIC_HEADS = ("scalar", "per_task")
DISTRIBUTED_MODES = ("auto", "on", "off")  # see toppo_jax/distributed.py


class ConfigError(ValueError):
    """A bad configuration value; the message is one line naming the value and the valid choices."""


# Field metadata of the settings that steer the host loop, not the training (output, budget, devices,
# checkpoints, logging, videos): they may change when a run is resumed, and are not part of the
# config's fingerprint (toppo_jax/rundir.py).
HOST = {"host": True}


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    tasks: str = "mt10"  # mt10, mt50, one task name (MT1) or a comma-separated list
    envs_per_task: int = 16  # parallel envs per task; x rollout_length = samples per task per iteration
    impl: str = "mujoco"  # physics backend: mujoco | warp | jax
    staggered: bool = True  # spread episode starts so time-outs do not all land on the same step
    reward_version: str = "v2"  # v2 | v1: the official reward_function_version (success is the same function in both)
    max_contacts: int = 0  # impl=jax only: keep the K deepest MJX contacts per condim group (0: all; envs.diet --contacts measures K)


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    gamma: float = 0.99
    gae_lambda: float = 0.97
    clip_eps: float = 0.2
    entropy_coef: float = 5e-3
    learning_rate: float = 3e-4
    adam_eps: float = 1e-5
    max_grad_norm: float = 1.0
    num_epochs: int = 16
    num_minibatches: int = 32
    rollout_length: int = 500  # steps per env per iteration
    advantage_norm: str = "iteration"  # per task, over the iteration's batch | over each minibatch (ahead in 3/3 short MT10 runs, not yet the default: docs/results/mt10-item6-cpu)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    actor_hidden: tuple[int, ...] = (400, 400, 400)
    critic_hidden: tuple[int, ...] = (400, 400, 400)
    activation: str = "relu"
    critic_heads: str = "scalar"  # scalar (per-task PopArt affine) | per_task (one head per task)
    ln_affine: bool = False
    log_std_min: float = LOG_STD_MIN  # bounds of the actor's state-dependent log-std (pre-tanh Gaussian)
    log_std_max: float = LOG_STD_MAX
    log_std_clip: str = "hard"  # hard | soft (networks.soft_clip: the bounds never stop the gradient; starts at std 0.51 and learned slower on MT10: docs/results/mt10-item6-cpu)
    policy_std: str = "state"  # state: the actor head outputs the log-std (the 717K count) | param: one learned log-std per action dim


@dataclasses.dataclass(frozen=True)
class ToppoConfig:
    popart: bool = True
    popart_beta: float = 0.05  # step size of the per-task return statistics per iteration (a choice: horizon ~20 iterations)
    popart_version: int = 2  # 2: trained per-task output layer, statistics once per iteration (runs before 2026-12-03: 1, ART-only affine)
    critic_layer_norm: bool = True  # Linear -> LayerNorm -> activation in the critic
    actor_combiner: str = "pcgrad"  # mean | pcgrad | cagrad | fairgrad
    critic_combiner: str = "cagrad"  # mean | pcgrad | cagrad | fairgrad
    cagrad_c: float = 0.5  # CAGrad radius c (its authors: 0.9 on MT10, 0.5 on MT50)
    fairgrad_alpha: float = 2.0  # FairGrad alpha-fairness


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    total_env_steps: int = dataclasses.field(default=0, metadata=HOST)  # env steps per seed; 0: 2M per task, the Meta-World+ budget (MT1 2M, MT10 2e7, MT50 1e8)
    iterations_per_chunk: int = 1  # K iterations per jitted call
    eval_every: int = 2_000_000  # env steps between evaluations (0: only at the end)
    eval_episodes: int = 50  # episodes per task, one per goal of its 50-goal table
    eval_stochastic: bool = dataclasses.field(default=False, metadata=HOST)  # also evaluate acting with policy samples (logged as eval_stochastic/...)
    worst_k: tuple[int, ...] = (1, 3, 5, 10)  # report the mean of the k worst tasks (k <= number of tasks)
    out: str = dataclasses.field(default="runs/toppo", metadata=HOST)  # run directory (config.json, metrics.jsonl, checkpoints/, plots/, videos/); rerun to resume
    num_seeds: int = 1  # seeds seed, seed+1, ... trained together (vmapped, one compile)
    sweep: str = ""  # in-jit grid, e.g. "learning_rate=1e-4,3e-4 cagrad_c=0.2,0.5": every point x every seed vmapped through one compile
    checkpoint_every: int = dataclasses.field(default=1_000_000, metadata=HOST)  # env steps between checkpoints (0: only at evaluations and the end)
    keep_checkpoints: int = dataclasses.field(default=3, metadata=HOST)  # keep the last N checkpoints, plus the best by eval success
    overwrite: bool = dataclasses.field(default=False, metadata=HOST)  # discard the run in --out (checkpoints, metrics, plots, videos, wandb) and start afresh
    nan_rollbacks: int = dataclasses.field(default=0, metadata=HOST)  # on non-finite losses/params: restore the last checkpoint with a halved learning rate, at most N times (0: stop)
    devices: int = dataclasses.field(default=1, metadata=HOST)  # data parallel over this host's first N devices (0: all): envs split, params replicated; with --num-seeds/--sweep the members are split instead
    distributed: str = dataclasses.field(default="auto", metadata=HOST)  # multi-host: auto joins the other processes when a launcher started several (JAX_COORDINATOR_ADDRESS+JAX_NUM_PROCESSES+JAX_PROCESS_ID, srun, mpirun, TPU pod); on: always; off: never
    log_every: int = dataclasses.field(default=1, metadata=HOST)  # when stderr is not a terminal (SLURM, nohup, | tee): a plain progress line every N chunks instead of the bar
    wandb: bool = dataclasses.field(default=True, metadata=HOST)  # log to Weights & Biases (offline unless WANDB_MODE says otherwise)
    wandb_project: str = dataclasses.field(default="toppo-jax", metadata=HOST)  # the wandb project (online: where the run appears)
    videos: bool = dataclasses.field(default=True, metadata=HOST)  # render policy videos (MuJoCo port only) into DIR/videos at the end of training
    video_every: int = dataclasses.field(default=0, metadata=HOST)  # env steps between videos during training (0: only at the end)
    video_tasks: tuple[str, ...] = dataclasses.field(default=(), metadata=HOST)  # tasks to film (empty: the worst and the best task of the last evaluation)


@dataclasses.dataclass(frozen=True)
class Config:
    env: EnvConfig = EnvConfig()
    ppo: PPOConfig = PPOConfig()
    network: NetworkConfig = NetworkConfig()
    toppo: ToppoConfig = ToppoConfig()
    train: TrainConfig = TrainConfig()


def replace(config: Config, **sections: Mapping) -> Config:
    """Config with fields of some sections replaced: replace(c, ppo={"num_epochs": 4})."""
    return dataclasses.replace(
        config, **{name: dataclasses.replace(getattr(config, name), **fields) for name, fields in sections.items()}
    )


def host_fields() -> frozenset[str]:
    """'section.field' of every field marked HOST."""
    return frozenset(
        f"{section.name}.{f.name}"
        for section in dataclasses.fields(Config)
        for f in dataclasses.fields(getattr(Config(), section.name))
        if f.metadata.get("host")
    )


STEPS_PER_TASK = 2_000_000  # the Meta-World+ budget: 2M env steps per task


def total_env_steps(config: Config, num_tasks: int) -> int:
    """The run's budget per seed: --total-env-steps, or 2M env steps per task when it is 0 (the default)."""
    return config.train.total_env_steps or STEPS_PER_TASK * num_tasks


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


# Defaults that changed: a saved config without the field ran with the old value (section, field) -> value.
LEGACY_DEFAULTS = {
    ("network", "log_std_max"): 2.0,  # until 2026-12-02 (the field did not exist; the clip was at 2)
    ("toppo", "popart_version"): 1,  # until 2026-12-03: ART-only affine, statistics updated every minibatch
}
POPART_VERSION = 2  # the only PopArt this code runs; a run saved with another refuses to resume, naming the field


def from_dict(data: Mapping) -> Config:
    """The Config of a dict (`to_dict`, a saved config.json); fields it lacks take today's defaults,
    except those in LEGACY_DEFAULTS, which take the value the run that saved it used."""
    sections = {}
    for field in dataclasses.fields(Config):
        cls = type(getattr(Config(), field.name))
        values = dict(data.get(field.name, {}))
        if field.name in data:
            values.update({f: v for (sec, f), v in LEGACY_DEFAULTS.items() if sec == field.name and f not in values})
        for f in dataclasses.fields(cls):
            if f.name in values and isinstance(values[f.name], list):
                values[f.name] = tuple(values[f.name])
        sections[field.name] = cls(**values)
    return Config(**sections)


# ---------------------------------------------------------------------------------- validation


def _suggest(value: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _choice(flag: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{flag} {value!r} is not valid; choose one of: {', '.join(choices)}{_suggest(value, choices)}")


def _positive(flag: str, value, *, allow_zero: bool = False) -> None:
    if not (value >= 0 if allow_zero else value > 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{flag} {value} is not valid; it must be {bound}")


def _unit(flag: str, value: float, *, closed: bool = True) -> None:
    ok = 0.0 <= value <= 1.0 if closed else 0.0 < value < 1.0
    if not ok:
        interval = "[0, 1]" if closed else "(0, 1)"
        raise ConfigError(f"{flag} {value} is not valid; it must lie in {interval}")


# Scalar hyperparameters an in-jit sweep may vary (the section of Config each lives in): the ones
# the learner carries as traced values.
SWEEPABLE = TRACED_HPARAMS


def hparams(config: Config) -> dict[str, float]:
    """The sweepable scalars of a config (what a TrainState carries as traced values)."""
    return default_hparams(config)


def with_hparams(config: Config, point: Mapping[str, float]) -> Config:
    """The config at one sweep point."""
    sections: dict[str, dict] = {}
    for name, value in point.items():
        sections.setdefault(SWEEPABLE[name], {})[name] = value
    return replace(config, **sections)


def sweep_points(spec: str) -> list[dict[str, float]]:
    """'--sweep "a=1,2 b=3"' -> the grid [{a: 1, b: 3}, {a: 2, b: 3}] (first name varies slowest); [] if empty."""
    spec = spec.strip()
    if not spec:
        return []
    axes: dict[str, list[float]] = {}
    for item in spec.replace(";", " ").split():
        name, sep, values = item.partition("=")
        if not sep or not values:
            raise ConfigError(f"--sweep {item!r} is not NAME=v1,v2,...; names: {', '.join(SWEEPABLE)}")
        if name not in SWEEPABLE:
            raise ConfigError(f"--sweep name {name!r} is not sweepable; choose from: {', '.join(SWEEPABLE)}{_suggest(name, SWEEPABLE)}")
        if name in axes:
            raise ConfigError(f"--sweep name {name!r} is given twice; list all its values once: {name}=v1,v2")
        try:
            axes[name] = [float(v) for v in values.split(",")]
        except ValueError:
            raise ConfigError(f"--sweep {item!r}: values must be numbers separated by commas") from None
    points = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    return points


def check_device_split(config: "Config", devices: int, label: str) -> None:
    """`devices` (the mesh size, described by `label`) must divide the members, or with one member
    every task's envs; ConfigError otherwise."""
    train, env = config.train, config.env
    members = max(1, len(sweep_points(train.sweep))) * train.num_seeds
    if devices <= 1:
        return
    if members > 1 and members % devices:
        raise ConfigError(
            f"{label} does not divide the {members} members (--num-seeds x --sweep points); choose a divisor of {members}"
        )
    if members == 1 and env.envs_per_task % devices:
        raise ConfigError(
            f"{label} does not divide --envs-per-task {env.envs_per_task}; each device steps an "
            f"equal share of every task's envs: choose a divisor of {env.envs_per_task}"
        )


def validate(config: Config, num_tasks: int | None = None) -> Config:
    """Check every value a person can set; raise ConfigError (one line) on the first bad one.

    Minibatches are stratified by task, so each task's rollout batch (rollout_length x
    envs_per_task samples) must split evenly into num_minibatches: then every minibatch holds every
    task, at least once. `num_tasks`, when known, only makes the message concrete.
    """
    env, ppo, net, top, train = config.env, config.ppo, config.network, config.toppo, config.train
    _choice("--impl", env.impl, IMPLS)
    _choice("--reward-version", env.reward_version, REWARD_VERSIONS)
    _positive("--max-contacts", env.max_contacts, allow_zero=True)
    if env.max_contacts and env.impl != "jax":
        raise ConfigError(f"--max-contacts {env.max_contacts} caps MJX JAX's contacts: it needs --impl jax, not --impl {env.impl} (or --max-contacts 0)")
    _positive("--envs-per-task", env.envs_per_task)
    _unit("--gamma", ppo.gamma)
    _unit("--gae-lambda", ppo.gae_lambda)
    _positive("--clip-eps", ppo.clip_eps)
    _positive("--entropy-coef", ppo.entropy_coef, allow_zero=True)
    _positive("--learning-rate", ppo.learning_rate)
    _positive("--adam-eps", ppo.adam_eps)
    _positive("--max-grad-norm", ppo.max_grad_norm)
    _positive("--num-epochs", ppo.num_epochs)
    _positive("--num-minibatches", ppo.num_minibatches)
    _positive("--rollout-length", ppo.rollout_length)
    _choice("--advantage-norm", ppo.advantage_norm, ADVANTAGE_NORMS)
    for flag, hidden in (("--actor-hidden", net.actor_hidden), ("--critic-hidden", net.critic_hidden)):
        if len(hidden) == 0 or any(h <= 0 for h in hidden):
            raise ConfigError(f"{flag} {' '.join(map(str, hidden)) or '(empty)'} is not valid; give one or more positive widths")
    _choice("--activation", net.activation, tuple(ACTIVATIONS))
    _choice("--critic-heads", net.critic_heads, CRITIC_HEADS)
    _choice("--log-std-clip", net.log_std_clip, LOG_STD_CLIPS)
    _choice("--policy-std", net.policy_std, POLICY_STDS)
    if not net.log_std_min < net.log_std_max:
        raise ConfigError(f"--log-std-min {net.log_std_min} / --log-std-max {net.log_std_max} are not valid; the minimum must be below the maximum")
    _unit("--popart-beta", top.popart_beta, closed=False)
    if top.popart_version != POPART_VERSION:
        raise ConfigError(
            f"--popart-version {top.popart_version} is not valid; only {POPART_VERSION} (trained per-task outputs, "
            "statistics once per iteration) is implemented: runs of version 1 evaluate but do not resume"
        )
    _choice("--actor-combiner", top.actor_combiner, COMBINERS)
    _choice("--critic-combiner", top.critic_combiner, COMBINERS)
    _positive("--cagrad-c", top.cagrad_c, allow_zero=True)
    _positive("--fairgrad-alpha", top.fairgrad_alpha)
    _positive("--total-env-steps", train.total_env_steps, allow_zero=True)
    _positive("--iterations-per-chunk", train.iterations_per_chunk)
    _positive("--eval-every", train.eval_every, allow_zero=True)
    _positive("--eval-episodes", train.eval_episodes)
    _positive("--num-seeds", train.num_seeds)
    _positive("--checkpoint-every", train.checkpoint_every, allow_zero=True)
    _positive("--keep-checkpoints", train.keep_checkpoints)
    _positive("--video-every", train.video_every, allow_zero=True)
    _positive("--nan-rollbacks", train.nan_rollbacks, allow_zero=True)
    _positive("--log-every", train.log_every)
    _positive("--devices", train.devices, allow_zero=True)
    if not train.wandb_project:
        raise ConfigError("--wandb-project '' is not valid; give a project name")
    if len(train.worst_k) == 0 or any(k <= 0 for k in train.worst_k):
        raise ConfigError(f"--worst-k {' '.join(map(str, train.worst_k)) or '(empty)'} is not valid; give one or more positive k")
    if not train.out:
        raise ConfigError("--out '' is not valid; give an output directory")
    for point in sweep_points(train.sweep):
        try:
            validate(replace(with_hparams(config, point), train={"sweep": ""}), num_tasks)
        except ConfigError as err:
            raise ConfigError(f"--sweep point {point}: {err}") from None
    if train.distributed not in DISTRIBUTED_MODES:
        raise ConfigError(f"--distributed {train.distributed!r} is not a mode; valid: {', '.join(DISTRIBUTED_MODES)}")
    check_device_split(config, train.devices, f"--devices {train.devices}")
    per_task = ppo.rollout_length * env.envs_per_task
    if ppo.num_minibatches > per_task:
        tasks = f"{num_tasks} tasks" if num_tasks is not None else "number of tasks"
        raise ConfigError(
            f"--num-minibatches {ppo.num_minibatches} makes minibatches smaller than the {tasks}: each task has only "
            f"rollout_length x envs_per_task = {per_task} samples; choose at most {per_task}"
        )
    if per_task % ppo.num_minibatches:
        raise ConfigError(
            f"--num-minibatches {ppo.num_minibatches} does not divide the per-task batch rollout_length x "
            f"envs_per_task = {per_task}; choose a divisor of {per_task}"
        )
    return config


def physics_kwargs(env: EnvConfig) -> dict:
    """The env-constructor arguments of the physics settings beyond ``impl`` (``--max-contacts``)."""
    return {"max_contact_points": env.max_contacts} if env.max_contacts else {}
