"""The run directory: its lock, the config it belongs to, and reading a trained policy back from it.

A run directory (`--out DIR`) is tied to one run-defining config: `config_fingerprint` is the config
without the fields that only steer the host loop (`config.HOST` metadata: output, budget, devices,
checkpoint, logging and video settings), with the task spec replaced by the resolved task list.
`prepare_run_dir` refuses a directory that holds another config unless `--overwrite`; `RunLock`
keeps a second training process out; `load_policy` rebuilds a checkpoint's actor and observation
normaliser for evaluation and videos without the trainer that saved them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp

from toppo_jax import config as cfg
from toppo_jax import learner, ppo
from toppo_jax.checkpoint import CHECKPOINTS, CheckpointMismatchError, Checkpointer, jsonable
from toppo_jax.networks import Networks

# What --overwrite removes from a run directory (never anything else).
RUN_FILES = ("config.json", "metrics.jsonl", CHECKPOINTS, "plots", "videos", "wandb")
LOCK_FILE = ".lock"

class RunLockedError(cfg.ConfigError):
    """Another training process is writing to the run directory."""

class RunLock:
    """An exclusive lock on a run directory for the life of a training process (`DIR/.lock`).

    `fcntl.flock` on an open file: the kernel drops it when the process ends, however it ends
    (SIGKILL included), so a crashed run never leaves a stale lock behind.
    """

    def __init__(self, out: Path):
        import fcntl
        import os
        import socket

        self.path = Path(out) / LOCK_FILE
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.seek(0)
            holder = self._file.read().strip() or "unknown process"
            self._file.close()
            raise RunLockedError(
                f"--out {out} is in use by another training run ({holder}); wait for it to end or choose another --out"
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()} on {socket.gethostname()}")
        self._file.flush()

    def release(self) -> None:
        if not self._file.closed:
            self._file.close()  # closing the file drops the flock

def _flat(config_dict: Mapping) -> dict[str, Any]:
    return {f"{section}.{k}": v for section, fields in config_dict.items() for k, v in fields.items()}

def config_fingerprint(config_dict: Mapping, tasks: Sequence[str]) -> dict[str, Any]:
    """Run-defining fields `section.field -> value` of a config dict (`config.to_dict`); missing
    fields take today's defaults (or the old default, `cfg.LEGACY_DEFAULTS`), so a run saved before a
    field existed still resumes, and one whose default has changed since says so."""
    flat = _flat(cfg.to_dict(cfg.Config()))
    flat.update({f"{sec}.{f}": v for (sec, f), v in cfg.LEGACY_DEFAULTS.items() if sec in config_dict})
    flat.update(_flat(config_dict))
    host = cfg.host_fields()
    flat = {k: v for k, v in flat.items() if k not in host}
    flat["env.tasks"] = list(tasks)  # 'mt10' and its ten names are the same task set
    return jsonable(flat)

def config_hash(fingerprint: Mapping) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]

def describe_diff(saved: Mapping, current: Mapping, limit: int = 4) -> str:
    """'env.envs_per_task 4 -> 8, ...' for the fields that differ (at most `limit`, then a count)."""
    keys = sorted(set(saved) | set(current))
    diffs = [f"{k} {saved.get(k, '(absent)')!r} -> {current.get(k, '(absent)')!r}" for k in keys if saved.get(k) != current.get(k)]
    more = f" and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more

def prepare_run_dir(out: Path, config: cfg.Config, tasks: Sequence[str]) -> bool:
    """Check `out` before a run: True if it may resume (same run-defining config or empty).

    A directory holding another config raises CheckpointMismatchError naming the fields that differ,
    unless `--overwrite`; `--overwrite` removes the run's files (RUN_FILES only) and starts afresh.
    """
    out = Path(out)
    if config.train.overwrite:
        for name in RUN_FILES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        return False
    path = out / "config.json"
    if not path.exists():
        return True
    saved = json.loads(path.read_text())
    saved_fp = config_fingerprint(saved.get("config", {}), saved.get("tasks", []))
    current_fp = config_fingerprint(cfg.to_dict(config), tasks)
    if saved_fp != current_fp:
        raise CheckpointMismatchError(
            f"--out {out} holds a run of another config ({describe_diff(saved_fp, current_fp)}); "
            "pass --overwrite to replace it, or choose another --out"
        )
    return True

def open_run(run_dir: str | Path, best: bool = False) -> tuple[dict, dict, dict, int]:
    """(config.json, raw state, meta, step) of a run's latest (or best-by-eval) checkpoint.

    Raises FileNotFoundError with a one-line reason when the run has no config or no checkpoint.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"--run {run_dir} has no config.json; give a directory written by toppo_jax.train")
    saved = json.loads(config_path.read_text())
    ckpt = Checkpointer(run_dir / CHECKPOINTS, read_only=True)
    try:
        step = ckpt.best_step() if best else ckpt.latest_step()
        if step is None:
            what = "evaluated checkpoint (--best)" if best else "checkpoint"
            raise FileNotFoundError(f"--run {run_dir} has no {what} in {ckpt.directory}")
        state, meta = ckpt.restore_raw(step)
    finally:
        ckpt.close()
    return saved, state, meta, step


def check_writable(out: Path) -> None:
    """ConfigError naming --out when the directory cannot be created or written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise cfg.ConfigError(f"--out {out} is not writable ({err.strerror or err}); choose another --out") from None


@dataclasses.dataclass(frozen=True)
class SavedPolicy:
    """The actor of a checkpoint: what evaluation and videos need, without the trainer that saved it."""

    config: Any  # toppo_jax.config.Config
    tasks: tuple[str, ...]
    networks: Networks
    actor_params: Any  # with a leading seed axis when num_seeds > 1
    obs_stats: ppo.RunningStats
    num_seeds: int
    seeds: tuple[int, ...]
    step: int
    meta: dict

    def seed(self, i: int):
        """(actor_params, obs_stats) of the i-th seed."""
        if self.num_seeds == 1:
            return self.actor_params, self.obs_stats
        return jax.tree_util.tree_map(lambda x: x[i], (self.actor_params, self.obs_stats))


def load_policy(run_dir, best: bool = False) -> SavedPolicy:
    """The latest (or best-by-eval) checkpoint's actor and observation normaliser of a run."""
    saved, raw, meta, step = open_run(run_dir, best=best)
    config = cfg.from_dict(saved["config"])
    tasks = tuple(saved["tasks"])
    actor_params = jax.tree_util.tree_map(jnp.asarray, raw["actor_params"])
    obs_stats = ppo.RunningStats(**{k: jnp.asarray(v) for k, v in raw["obs_stats"].items()})
    num_seeds = int(meta["layout"]["num_seeds"])
    # Sizes from the arrays: base obs = the normaliser's width; actions = the actor head's width, halved
    # when it also outputs the log-std.
    base_obs = obs_stats.mean.shape[-1]
    action_size = actor_params["params"]["head"]["kernel"].shape[-1] // (2 if config.network.policy_std == "state" else 1)
    networks = learner.build_networks(config, base_obs + len(tasks), action_size, len(tasks))
    seeds = tuple(saved.get("seeds", [config.train.seed + i for i in range(num_seeds)]))
    return SavedPolicy(config, tasks, networks, actor_params, obs_stats, num_seeds, seeds, int(step), meta)

