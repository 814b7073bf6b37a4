"""The host loop of a training run (`run`), a small class of named steps around the learner.

`run(config, tasks)` trains one config (every member of its population: seeds x sweep points,
vmapped) in the run directory `--out`: it takes the directory's lock, then `HostLoop` does, in order,
`restore_or_init` (the latest readable checkpoint, or a fresh state), `compile` (the chunk and the
evaluation programs for the abstract state, so a fresh and a resumed run run the same program), and
per chunk `run_chunk`, `on_nonfinite` (roll back or stop), `log` (metrics.jsonl, wandb, plots),
`evaluate`, `save` (orbax) and `film` (videos). Only process 0 writes files in a multi-process run;
every process takes the same decisions from replicated values.

metrics.jsonl has one line per member per chunk: `seed`, `env_steps`, `sps` (env steps of all members
per second of training, evaluation excluded), `perf/wall_s` (wall clock of the run so far, compiles
and evaluations included, carried over resumes), `perf/compile_s` (first line of every session),
`train/value_loss` (normalised units), `train/policy_loss`, `train/entropy`, `train/approx_kl`,
`train/clip_frac`, `train/explained_variance`, `train/log_std/<task>` (mean log-std of the pre-tanh
policy on the task's samples), critic diagnostics `train/d1`, `train/d2`, `train/grad_norm/<task>`
(`train/d1_shared`, `train/d2_shared`: the same without the per-task output layer),
actor diagnostics `train/actor_d1`, `train/actor_d2`, `train/actor_grad_norm/<task>`, the combined
update norms, `train/popart_sigma/<task>`, `train/popart_mean/<task>`, training-episode success
`train/success_mean`, `train/success/<task>`, and after an evaluation `eval/success_mean`,
`eval/success_worst_<k>`, `eval/success/<task>`, `perf/eval_s`, and with `--eval-stochastic` the same
under `eval_stochastic/` for the policy acting with its samples instead of tanh(mean).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import jax
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from toppo_jax import checkpoint as ckpt
from toppo_jax import config as cfg
from toppo_jax import distributed, filming, learner, plots, policy, rundir
from toppo_jax import logger as logs
from toppo_jax import networks as nets
from toppo_jax.population import make_population
from toppo_jax.sharding import device_mesh, state_shardings


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


def default_make_env(tasks, envs_per_task, **kwargs):
    from envs import make_multitask

    return make_multitask(list(tasks), envs_per_task, **kwargs)


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class PlainProgress:
    """The progress bar's content as one plain line per `every` chunks (and at the last), for a
    stderr that is not a terminal: a log file, SLURM, nohup, `| tee`."""

    def __init__(self, console: Console, total: int, completed: int, every: int):
        self.console, self.total, self.completed, self.every = console, total, completed, every
        self.start, self.t0, self.chunks = completed, time.perf_counter(), 0

    def update(self, completed: int, status: str) -> None:
        self.completed, self.chunks = completed, self.chunks + 1
        if self.chunks % self.every and completed < self.total:
            return
        elapsed = time.perf_counter() - self.t0
        rate = (completed - self.start) / elapsed if elapsed > 0 and completed > self.start else 0.0
        eta = _clock((self.total - completed) / rate) if rate > 0 else "?"
        self.console.print(f"toppo {completed:,}/{self.total:,} env steps ({100 * completed / self.total:.1f}%) | {status} | "
                           f"elapsed {_clock(elapsed)} | ETA {eta}", highlight=False, soft_wrap=True)


def check_impl(impl: str, tasks=()) -> str:
    """The physics backend `impl` resolves to here for `tasks` (`auto`: by platform); a backend that
    cannot run here, or cannot run one of the tasks, is bad input (ConfigError), found before anything compiles."""
    from envs import backends

    try:
        return backends.check_impl(impl, tuple(tasks))
    except (backends.BackendUnavailableError, ValueError) as err:
        raise cfg.ConfigError(f"--impl {impl!r}: {err}") from None


def _fmt(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else str(x)


def _crossed(every: int, env_steps: int, steps_per_chunk: int) -> bool:
    """Whether the chunk that ended at `env_steps` crossed a multiple of `every` (0: never)."""
    return every > 0 and env_steps // every > (env_steps - steps_per_chunk) // every


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


def run(
    config: cfg.Config,
    tasks: Sequence[str],
    make_env: Callable = default_make_env,
    compiler_options: dict | None = None,
) -> list[dict]:
    """Train one config (its whole population) in the run directory DIR = --out; returns every
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
    primary = jax.process_index() == 0  # in a multi-process run, process 0 alone writes the run's files
    out = Path(config.train.out)
    cache_dir = setup_compilation_cache()
    if not primary:
        return HostLoop(config, tasks, make_env, compiler_options, cache_dir).run()
    rundir.check_writable(out)
    lock = rundir.RunLock(out)  # a second run on the same --out stops here
    try:
        return HostLoop(config, tasks, make_env, compiler_options, cache_dir).run()
    finally:
        lock.release()


class HostLoop:
    """One session of a run: set up in `__init__`, driven by `run`, one named method per step."""

    def __init__(self, config: cfg.Config, tasks: Sequence[str], make_env: Callable, compiler_options: dict | None,
                 cache_dir: str):
        self.config, self.tasks, self.compiler_options, self.cache_dir = config, tuple(tasks), compiler_options, cache_dir
        env_c, train_c = config.env, config.train
        self.primary = jax.process_index() == 0
        self.out = Path(train_c.out)
        self.console = Console(stderr=True, quiet=not self.primary)
        self._warned: set[str] = set()
        # --overwrite: process 0 clears the directory while the others wait; else every process reads it.
        self.may_resume = rundir.prepare_run_dir(self.out, config, tasks) if self.primary or not train_c.overwrite else False
        distributed.barrier("toppo-prepare-run-dir")
        self.population = pop = make_population(config)
        self.mesh = mesh = device_mesh(config, len(tasks))
        # With one member the envs are split over the devices (each steps its share); with several, the members are.
        env_mesh = {"mesh": mesh} if mesh is not None and pop.num_members == 1 else {}
        eval_mesh = env_mesh if mesh is not None and train_c.eval_episodes % mesh.size == 0 else {}
        self.env = make_env(tasks, env_c.envs_per_task, seed=train_c.seed, impl=env_c.impl, staggered=env_c.staggered,
                            reward_version=env_c.reward_version, **cfg.physics_kwargs(env_c), **env_mesh)
        eval_env = make_env(tasks, train_c.eval_episodes, seed=train_c.seed, impl=env_c.impl, staggered=False, eval_mode=True,
                            reward_version=env_c.reward_version, **cfg.physics_kwargs(env_c), **eval_mesh)
        cfg.validate(cfg.replace(config, env={"envs_per_task": self.env.envs_per_task}), len(tasks))
        self.trainer = learner.make_train(config, self.env, mesh=env_mesh.get("mesh"))
        networks = self.trainer.networks
        hparams = pop.hparams(config)
        init = pop.batched(self.trainer.init)
        self.init_fn = lambda keys: init(keys, hparams)  # noqa: E731
        self.chunk_fn = pop.batched(self.trainer.train_chunk)
        self.eval_fn = pop.batched(policy.on_train_state(policy.make_evaluate(eval_env, networks)))
        self.noisy_eval_fn = pop.batched(policy.on_train_state(policy.make_evaluate(eval_env, networks, stochastic=True)))
        self.keys = pop.keys()
        fingerprint = rundir.config_fingerprint(cfg.to_dict(config), tasks)
        self.config_hash = rundir.config_hash(fingerprint)
        self.layout = ckpt.layout(self.trainer.task_names, self.env.envs_per_task, pop.num_members)
        abstract = jax.eval_shape(self.init_fn, self.keys)
        self.shardings = state_shardings(abstract, mesh, pop.num_members)
        if self.shardings is not None:
            # Checkpoints restore straight into these shardings, whatever mesh wrote them.
            abstract = jax.tree_util.tree_map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), abstract,
                                              self.shardings)
        self.abstract = abstract
        # Metrics, evaluation results and videos' parameters are read by the host: replicated on every process.
        self.replicated = None if mesh is None else jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        self.checkpointer = ckpt.Checkpointer(self.out / ckpt.CHECKPOINTS, keep=train_c.keep_checkpoints)
        self.steps_per_chunk = self.trainer.env_steps_per_chunk
        self.steps_per_iteration = self.steps_per_chunk // train_c.iterations_per_chunk
        self.num_chunks = max(1, math.ceil(cfg.total_env_steps(config, len(tasks)) / self.steps_per_chunk))
        self.lr_scale = 1.0
        self.rollbacks_left = train_c.nan_rollbacks
        self.logger = None
        self.wandb_run = None

    # ---------------------------------------------------------------------------- messages
    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    def warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self.warn(message)

    def note(self, message: str) -> None:
        self.console.print(message, soft_wrap=True)

    # ------------------------------------------------------------------------ named steps
    def restore_or_init(self):
        """(state, first chunk index, wandb run id, earlier metrics lines) from the latest readable
        checkpoint, or a fresh state; None when the run is already complete."""
        # Restore before anything is written, so a mismatching checkpoint leaves the directory as it was.
        restored = self.checkpointer.restore(self.abstract, self.layout, warn=self.warn) if self.may_resume else None
        self.resumed = restored is not None
        if restored is not None:
            state, meta = restored
            start = int(meta["chunk"]) + 1
            self.lr_scale = float(meta.get("lr_scale", 1.0))
            run_id = meta.get("wandb_run_id") or logs.new_run_id()
            prior = logs.truncate_metrics(self.out / logs.METRICS_FILE, int(meta["env_steps"])) if self.primary else []
            note = f"resuming {self.out} from its checkpoint at {int(meta['env_steps']):,} env steps (chunk {start})"
            if self.lr_scale != 1.0:
                note += f", learning rate x {self.lr_scale:g} after NaN rollbacks"
            self.note(note)
            if start >= self.num_chunks:
                self.note(f"{self.out} is complete at {start * self.steps_per_chunk:,} env steps; raise --total-env-steps to train further")
                return None, start, run_id, prior
            return state, start, run_id, prior
        if self.primary and logs.read_metrics(self.out / logs.METRICS_FILE):
            self.note(f"{self.out} has metrics but no checkpoint: starting afresh (metrics.jsonl is rewritten)")
        state = jax.jit(self.init_fn, compiler_options=self.compiler_options, out_shardings=self.shardings)(self.keys)
        # A wandb sweep agent names the run (WANDB_RUN_ID): adopt it so the sweep sees this run.
        return state, 0, os.environ.get("WANDB_RUN_ID") or logs.new_run_id(), []

    def write_config(self, run_id: str) -> dict:
        """DIR/config.json: the config, tasks, members, parameter counts, versions and devices."""
        pop, mesh = self.population, self.mesh
        actor_params, critic_params = jax.eval_shape(self.trainer.networks.init, jax.random.PRNGKey(0))
        versions, device = logs.versions(), logs.device_info()
        info = {
            "config": cfg.to_dict(self.config),
            "tasks": list(self.tasks),
            "seeds": pop.seeds,
            **({"sweep": list(pop.points), "members": [{"seed": seed, **point} for point, seed in pop.members]} if pop.points else {}),
            "config_hash": self.config_hash,
            "num_params": {"actor": nets.count_params(actor_params), "critic": nets.count_params(critic_params)},
            "env_steps_per_chunk": self.trainer.env_steps_per_chunk,
            "physics": getattr(self.env, "impl", "none"),  # the backend --impl resolved to (auto: by platform)
            "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()],
            "data_parallel_devices": 1 if mesh is None else mesh.size,
            "processes": jax.process_count(),
            "versions": versions,
            **device,
            "wandb_run_id": run_id,
            "compilation_cache": self.cache_dir,
        }
        if self.primary:
            (self.out / "config.json").write_text(json.dumps(info, indent=2))
        return info

    def compile(self) -> float:
        """Compile the chunk and the evaluation programs for the abstract state; returns the seconds taken."""
        with warnings.catch_warnings():
            # CPU backends cannot reuse donated buffers and say so on every call.
            warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
            t0 = time.perf_counter()
            outs = None if self.shardings is None else (self.shardings, self.replicated)
            self.chunk = jax.jit(self.chunk_fn, donate_argnums=0, compiler_options=self.compiler_options,
                                 out_shardings=outs).lower(self.abstract).compile()
            self.evaluate_fn, self.evaluate_noisy_fn = (
                jax.jit(f, compiler_options=self.compiler_options, out_shardings=self.replicated).lower(self.abstract).compile()
                if f is not None else None
                for f in (self.eval_fn, self.noisy_eval_fn if self.config.train.eval_stochastic else None))
            return time.perf_counter() - t0

    def open_logs(self, info: dict, run_id: str, compile_s: float) -> None:
        """wandb (process 0, --wandb) and DIR/metrics.jsonl."""
        train_c = self.config.train
        self.wandb_run = logs.Wandb(
            train_c.wandb and self.primary,
            project=train_c.wandb_project,
            run_id=run_id,
            run_dir=self.out,
            name=self.out.name,
            config={k: v for k, v in info.items() if k != "compilation_cache"},
            warn=lambda message: self.warn_once("wandb", message),
        )
        self.wandb_run.summary({"perf/compile_s": compile_s})
        self.logger = logs.RunLogger(self.out, resume=self.resumed, wandb_run=self.wandb_run) if self.primary else None

    def run_chunk(self, state):
        """One jitted chunk: (new state, host-fetched metrics, seconds)."""
        t_start = time.perf_counter()
        state, metrics = self.chunk(state)
        metrics = jax.device_get(metrics)
        return state, metrics, time.perf_counter() - t_start

    def on_nonfinite(self, c: int, metrics: dict):
        """None if every member's chunk was finite. Else, with rollbacks left and a checkpoint: (state,
        next chunk index) restored with a halved learning rate; else TrainingDivergedError."""
        pop = self.population
        bad = [(seed, nonfinite_report(pop.member(metrics, i), self.trainer.task_names, c * self.steps_per_chunk,
                                       self.steps_per_iteration))
               for i, seed in enumerate(pop.seeds)]  # fmt: skip
        bad = [f"seed {seed}: {r}" for seed, r in bad if r]
        if not bad:
            return None
        last_good = self.checkpointer.latest_step()
        what = "; ".join(bad)
        if self.rollbacks_left > 0 and last_good is not None:
            self.rollbacks_left -= 1
            self.lr_scale *= 0.5
            state, meta = self.checkpointer.restore(self.abstract, self.layout, warn=self.warn)
            # The learning rate is a traced hyperparameter of the state: halve it there.
            hp = dict(state.hparams)
            hp["learning_rate"] = hp["learning_rate"] * 0.5
            state = state.replace(hparams=hp)
            self.warn(
                f"{what}; rolled back to the checkpoint at {int(meta['env_steps']):,} env steps with the "
                f"learning rate x {self.lr_scale:g} ({self.rollbacks_left} rollback(s) left)"
            )
            if self.logger is not None:
                self.logger.rewind(int(meta["env_steps"]))
            self.lines = [line for line in self.lines if line["env_steps"] <= int(meta["env_steps"])]
            return state, int(meta["chunk"]) + 1
        kept = (f"the last good checkpoint ({last_good:,} env steps) is kept in {self.checkpointer.directory}"
                if last_good else "no checkpoint had been written")
        raise TrainingDivergedError(
            f"training diverged: {what}; {kept}; nothing of this chunk was saved "
            f"(--nan-rollbacks N retries from the last checkpoint with a halved learning rate)"
        )

    def evaluate(self, state):
        """(deterministic success [M, T] or [T], sampled-action success or None, seconds)."""
        t_eval = time.perf_counter()
        success = jax.device_get(self.evaluate_fn(state))
        noisy = jax.device_get(self.evaluate_noisy_fn(state)) if self.evaluate_noisy_fn is not None else None
        return success, noisy, time.perf_counter() - t_eval

    def log(self, metrics: dict, elapsed: float, wall_s: float, compile_s: float | None, evaluation) -> list[dict]:
        """One metrics line per member (DIR/metrics.jsonl, wandb); `evaluation` = evaluate()'s result or None."""
        pop, train_c, names = self.population, self.config.train, self.trainer.task_names
        chunk_lines = []
        for i, seed in enumerate(pop.seeds):
            m = pop.member(metrics, i)
            line = {"seed": seed, "env_steps": int(m["env_steps"]), "sps": self.steps_per_chunk * pop.num_members / elapsed,
                    "perf/wall_s": wall_s}
            if pop.points:
                line["member"] = i
                line.update({f"hp/{k}": v for k, v in pop.members[i][0].items()})
            if compile_s is not None:
                line["perf/compile_s"] = compile_s
            line.update(chunk_metrics(m, names))
            if evaluation is not None:
                success, noisy, eval_s = evaluation
                line.update(policy.summarize(pop.member(success, i), names, train_c.worst_k))
                line["perf/eval_s"] = eval_s
                if noisy is not None:
                    line.update(policy.summarize(pop.member(noisy, i), names, train_c.worst_k, prefix="eval_stochastic"))
            chunk_lines.append(line)
        if self.logger is not None:
            self.logger.log(chunk_lines)
        self.lines.extend(chunk_lines)
        return chunk_lines

    def plot(self) -> None:
        if self.primary:
            try:
                plots.plot_run(self.out)
            except Exception as err:  # noqa: BLE001 - a plot must never stop training
                self.warn_once("plots", f"plots not drawn ({type(err).__name__}: {err})")

    def save(self, state, c: int, env_steps: int, success_mean: float | None, run_id: str) -> None:
        meta = {
            "chunk": c,
            "env_steps": env_steps,
            "wandb_run_id": run_id,
            "config_hash": self.config_hash,
            "layout": self.layout,
            "eval/success_mean": success_mean,
            "lr_scale": self.lr_scale,
        }
        self.checkpointer.save(env_steps, state, meta, success_mean=success_mean)

    def film(self, state, env_steps: int) -> bool:
        """Videos of the first member's policy (DIR/videos, wandb); False when no more should be tried."""
        pop, names, train_c = self.population, self.trainer.task_names, self.config.train
        evals = [line for line in self.lines if "eval/success_mean" in line and line["seed"] == pop.seeds[0]]
        tasks_to_film = filming.pick_tasks(names, evals[-1] if evals else None, self.film_requested)
        gather = (lambda tree: tree) if self.replicated is None else jax.jit(lambda tree: tree, out_shardings=self.replicated)
        params, stats = pop.member(gather((state.actor_params, state.obs_stats)), 0)
        if not self.primary:
            return distributed.from_primary(True)
        try:
            paths = filming.record(
                names, tasks_to_film, seed=train_c.seed, impl=self.config.env.impl,
                actor_apply=self.trainer.networks.actor.apply, actor_params=params, obs_stats=stats,
                out_dir=self.out / filming.VIDEOS, env_steps=env_steps,
            )  # fmt: skip
        except filming.VideoUnavailable as err:
            self.note(f"videos: skipped, {err}")
            return distributed.from_primary(False)
        except Exception as err:  # noqa: BLE001 - a video must never stop training
            self.warn_once("video", f"video not made ({type(err).__name__}: {err}); no more videos this run")
            return distributed.from_primary(False)
        for task, path in zip(tasks_to_film, paths):
            self.wandb_run.video(f"video/{task}", path, step=env_steps, caption=f"{task} at {env_steps:,} env steps")
        return distributed.from_primary(True)

    def _eval_status(self, chunk_lines: list[dict]) -> str:
        """' | eval <mean> worst-<k> <v>' of the run's last evaluation (first member), '' before any."""
        evals = [line for line in self.lines if "eval/success_mean" in line and line["seed"] == chunk_lines[0]["seed"]]
        if not evals:
            return ""
        last = evals[-1]
        worst = sorted((int(k.rsplit("_", 1)[1]), v) for k, v in last.items() if k.startswith("eval/success_worst_"))
        text = f" | eval {_fmt(last['eval/success_mean'])}"
        if len(chunk_lines) > 1:
            text += f" (seed {last['seed']} of {len(chunk_lines)} members)"
        return text + "".join(f" worst-{k} {_fmt(v)}" for k, v in worst[:2])

    # ------------------------------------------------------------------------------ driver
    def run(self) -> list[dict]:
        train_c = self.config.train
        with _GracefulStop() as stopper:
            try:
                state, start, run_id, prior = self.restore_or_init()
                if state is None:
                    return prior
                info = self.write_config(run_id)
                t0 = time.perf_counter()  # the session's wall clock starts with the compile
                compile_s = self.compile()
                self.note(f"physics: {info['physics']} (--impl {self.config.env.impl}) on {info['backend']}; "
                          f"compiled in {compile_s:.0f}s")
                self.open_logs(info, run_id, compile_s)
                self.film_requested = filming.resolve_video_tasks(train_c.video_tasks, self.trainer.task_names)
                videos_on = train_c.videos
                if videos_on and getattr(self.env, "envs", None) is None:
                    self.note("videos: skipped, they need the MuJoCo port (this env has no MuJoCo task models)")
                    videos_on = False
                self.lines = list(prior)
                # Wall clock of the run, compiles and evaluations included, carried over resumes.
                wall_before = float(prior[-1].get("perf/wall_s", 0.0)) if prior else 0.0
                steps_per_chunk, num_chunks = self.steps_per_chunk, self.num_chunks
                columns = (
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
                    TextColumn("{task.fields[status]}"),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                )
                if self.console.is_terminal:
                    progress = Progress(*columns, console=self.console)
                    bar = progress.add_task("toppo", total=num_chunks * steps_per_chunk, completed=start * steps_per_chunk,
                                            status=f"compile {compile_s:.1f}s")
                    report = lambda status: progress.update(bar, completed=c * steps_per_chunk, status=status)  # noqa: E731
                else:  # a log, not a terminal: the bar would stay silent until the end
                    progress = contextlib.nullcontext()
                    plain = PlainProgress(self.console, num_chunks * steps_per_chunk, start * steps_per_chunk, train_c.log_every)
                    report = lambda status: plain.update(c * steps_per_chunk, status)  # noqa: E731
                with progress:
                    c, first_of_session = start, True
                    while c < num_chunks:
                        state, metrics, elapsed = self.run_chunk(state)
                        env_steps = (c + 1) * steps_per_chunk
                        # NaN guard: a chunk with a non-finite value is never logged or saved.
                        rolled_back = self.on_nonfinite(c, metrics)
                        if rolled_back is not None:
                            state, c = rolled_back
                            if self.console.is_terminal:
                                progress.update(bar, completed=c * steps_per_chunk)
                            continue
                        last = c == num_chunks - 1
                        evaluate_now = _crossed(train_c.eval_every, env_steps, steps_per_chunk) or last
                        evaluation = self.evaluate(state) if evaluate_now else None
                        wall_s = wall_before + time.perf_counter() - t0
                        chunk_lines = self.log(metrics, elapsed, wall_s, compile_s if first_of_session else None, evaluation)
                        first_of_session = False
                        if evaluate_now:
                            self.plot()
                        # The checkpoint follows the metrics of its chunk, so a resume truncates, never loses, lines.
                        stopping = distributed.any_process(stopper.signal_name is not None)  # every process stops at the same chunk
                        if evaluate_now or last or stopping or _crossed(train_c.checkpoint_every, env_steps, steps_per_chunk):
                            success_mean = None if evaluation is None else float(np.mean(evaluation[0]))
                            self.save(state, c, env_steps, success_mean, run_id)
                        if stopping:
                            if self.console.is_terminal:
                                progress.stop()
                            self.note(
                                f"received {stopper.signal_name or 'a stop signal (on another process)'}: stopped after "
                                f"{env_steps:,} env steps with a checkpoint in "
                                f"{self.checkpointer.directory}; rerun the same command to resume"
                            )
                            break
                        if videos_on and (last or _crossed(train_c.video_every, env_steps, steps_per_chunk)):
                            videos_on = self.film(state, env_steps)
                        c += 1
                        report(f"{chunk_lines[-1]['sps']:,.0f} sps" + self._eval_status(chunk_lines))
            finally:
                if self.logger is not None:
                    self.logger.close()
                self.checkpointer.close()
        return self.lines
