"""Checkpoints of a training run: the whole `TrainState` and host metadata, saved with orbax.

A checkpoint is one orbax step directory `DIR/checkpoints/<env_steps>/` with two items: `state`, the
full `TrainState` pytree (actor/critic params, both optimizer states, PopArt statistics, the
observation normaliser, the batched env state, RNG keys, env-step and iteration counters), and
`meta`, a JSON record of what the host loop needs to continue (chunk index, env steps, wandb run id,
config hash, task list and batch layout). Orbax writes each step into a temporary directory and
renames it when complete, so a reader never sees a half-written checkpoint (`all_steps` ignores the
temporaries). The manager keeps the last N checkpoints plus the best by mean evaluation success
(ties go to the later one). `Checkpointer.restore` refuses a checkpoint of another batch layout or
task set, naming the mismatch, before reading any array. The run directory around the checkpoints
(its config, lock and policy loading) is `rundir.py`.
"""

from __future__ import annotations

import datetime
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from toppo_jax import config as cfg

CHECKPOINTS = "checkpoints"
BEST_METRIC = "eval/success_mean"
META_FORMAT = 1


class CheckpointMismatchError(cfg.ConfigError):
    """The run directory or checkpoint belongs to another config, task set or batch layout."""


class CheckpointCorruptError(cfg.ConfigError):
    """Every checkpoint of a run directory is unreadable."""


UNREADABLE = "checkpoints-unreadable"  # where unreadable checkpoints are moved, beside DIR/checkpoints


def jsonable(x):
    return json.loads(json.dumps(x))  # tuples -> lists, so saved and current values compare equal


def layout(task_names: Sequence[str], envs_per_task: int, num_seeds: int) -> dict[str, Any]:
    """The batch layout a TrainState's shapes follow: env i is task i // envs_per_task, per seed."""
    return {"tasks": list(task_names), "envs_per_task": int(envs_per_task), "num_seeds": int(num_seeds)}


def check_layout(saved: Mapping, expected: Mapping, where: str) -> None:
    """Raise CheckpointMismatchError naming the first field of the layout that differs."""
    for key in ("tasks", "envs_per_task", "num_seeds"):
        if saved.get(key) != expected.get(key):
            raise CheckpointMismatchError(
                f"checkpoint {where} was saved with {key} = {saved.get(key)!r} but this run has {key} = "
                f"{expected.get(key)!r}; restore it with the same {key}, or train into another --out"
            )


# ------------------------------------------------------------------------------- the manager


def abstract_state(tree) -> Any:
    """Shapes, dtypes and shardings of every leaf: the restore target. A leaf without a sharding (or
    with a single-device one) goes to this process's first device; a mesh sharding is kept, so a
    checkpoint restores straight onto the current mesh whatever mesh wrote it."""
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def target(x):
        sharding = getattr(x, "sharding", None)
        if not isinstance(sharding, jax.sharding.NamedSharding):
            sharding = local
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree_util.tree_map(target, tree)


def _leaf_name(path) -> str:
    parts = []
    for key in path:
        for attr in ("name", "key", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
    return ".".join(parts)


class _DropOrbaxNotices(logging.Filter):
    """Orbax logs routine notices as absl warnings (read-only mode, steps saved without a metric)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "orbax" not in record.pathname


def _quiet_orbax() -> None:
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, _DropOrbaxNotices) for f in absl_logger.filters):
        absl_logger.addFilter(_DropOrbaxNotices())


class Checkpointer:
    """Save and restore a run's checkpoints in `directory` (normally DIR/checkpoints)."""

    def __init__(self, directory: str | Path, keep: int = 3, read_only: bool = False):
        import orbax.checkpoint as ocp

        _quiet_orbax()
        self._ocp = ocp
        self._read_only = read_only
        self.directory = Path(directory).absolute()
        if read_only and not self.directory.is_dir():
            raise FileNotFoundError(f"no checkpoints in {self.directory}")
        policies = ocp.checkpoint_managers

        def metric(metrics):
            return float(metrics[BEST_METRIC])

        options = ocp.CheckpointManagerOptions(
            # Synchronous: the next chunk donates the state's buffers, so nothing may still read them.
            enable_async_checkpointing=False,
            create=not read_only,
            read_only=read_only,
            best_fn=metric,  # with a preservation policy this only makes orbax write and reload the metric
            best_mode="max",
            preservation_policy=None
            if read_only
            else policies.AnyPreservationPolicy(
                [
                    policies.LatestN(n=keep),
                    policies.BestN(get_metric_fn=metric, reverse=False, n=1, keep_checkpoints_without_metrics=False),
                ]
            ),
        )
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    # ---- queries --------------------------------------------------------------------------
    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def best_step(self) -> int | None:
        """The step with the highest mean evaluation success (the later one on ties); None if none was evaluated."""
        best, best_value = None, -np.inf
        for step in self.steps():
            metrics = self.manager.metrics(step)
            if metrics and BEST_METRIC in metrics and float(metrics[BEST_METRIC]) >= best_value:
                best, best_value = step, float(metrics[BEST_METRIC])
        return best

    def read_meta(self, step: int) -> dict:
        ocp = self._ocp
        return dict(self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta)

    # ---- save / restore -------------------------------------------------------------------
    def save(self, step: int, state, meta: Mapping, success_mean: float | None = None) -> bool:
        """Save `state` and `meta` as `step` (env steps); `success_mean` ranks it for best-by-eval."""
        ocp = self._ocp
        if step in self.manager.all_steps():
            return False
        meta = {"format": META_FORMAT, "time": datetime.datetime.now().isoformat(timespec="seconds"), **meta}
        metrics = None if success_mean is None else {BEST_METRIC: float(success_mean)}
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(jsonable(meta))),
            metrics=metrics,
        )
        return True

    def _check_shapes(self, step: int, target) -> None:
        """Name the first leaf whose saved shape or dtype differs from the target's."""
        try:
            tree = self.manager.item_metadata(step)["state"].tree
            saved = {
                leaf.name: leaf
                for leaf in jax.tree_util.tree_leaves(tree)
                if hasattr(leaf, "shape") and hasattr(leaf, "name")
            }
        except Exception:  # metadata layout differs across orbax versions: the restore itself still checks
            return
        where = self.directory / str(step)
        wanted = jax.tree_util.tree_flatten_with_path(target)[0]
        if not any(_leaf_name(path) in saved for path, _ in wanted):
            return  # leaf names in another format (another orbax version): leave it to the restore
        for path, want in wanted:
            name = _leaf_name(path)
            have = saved.get(name)
            if have is None:
                raise CheckpointMismatchError(f"checkpoint {where} has no entry {name}; it was saved by another trainer version or config")
            if tuple(have.shape) != tuple(want.shape) or np.dtype(have.dtype) != np.dtype(want.dtype):
                raise CheckpointMismatchError(
                    f"checkpoint {where}: {name} has shape {tuple(have.shape)} {np.dtype(have.dtype)} but this run "
                    f"expects {tuple(want.shape)} {np.dtype(want.dtype)}; restore it with the config it was trained with"
                )

    def restore(self, target, expected_layout: Mapping | None = None, step: int | None = None, warn=None):
        """(state, meta) of `step` (default: the latest readable one) restored into the structure of
        `target` (arrays or ShapeDtypeStructs); the layout and every leaf's shape are checked first.
        None if there is no checkpoint.

        Without `step`, an unreadable checkpoint (truncated file, missing item) is reported through
        `warn`, moved out of the way (to DIR/checkpoints-unreadable/, unless read-only) and the one
        before it is used; if none is readable, CheckpointCorruptError. A checkpoint of another
        layout is not corruption: it raises CheckpointMismatchError.
        """
        ocp = self._ocp
        candidates = [step] if step is not None else sorted(self.steps(), reverse=True)
        target = abstract_state(target)
        for s in candidates:
            where = self.directory / str(s)
            try:
                meta = self.read_meta(s)
            except Exception as err:  # noqa: BLE001 - any read failure means this checkpoint is unusable
                if step is not None:
                    raise
                self._set_aside(s, err, warn)
                continue
            if expected_layout is not None:
                check_layout(meta.get("layout", {}), expected_layout, str(where))
            self._check_shapes(s, target)
            try:
                restored = self.manager.restore(s, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
            except Exception as err:  # noqa: BLE001
                if step is not None:
                    raise
                self._set_aside(s, err, warn)
                continue
            return restored.state, meta
        if candidates:
            raise CheckpointCorruptError(
                f"no readable checkpoint in {self.directory} (moved to {self.directory.parent / UNREADABLE}); "
                "pass --overwrite to start the run afresh"
            )
        return None

    def _set_aside(self, step: int, err: BaseException, warn) -> None:
        """Report an unreadable checkpoint and move it out of the manager's sight (so the step can be saved again)."""
        where = self.directory / str(step)
        reason = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
        dest = None
        if not self._read_only:
            from toppo_jax import distributed

            dest = self.directory.parent / UNREADABLE / f"{step}-{datetime.datetime.now():%Y%m%dT%H%M%S}"
            if jax.process_index() == 0:  # every process finds the same checkpoint unreadable; one moves it
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(where), str(dest))
            distributed.barrier("toppo-set-aside-checkpoint")
            self.manager.reload()
        moved = f"moved to {dest}" if dest else "left in place (read-only)"
        (warn or logging.getLogger(__name__).warning)(
            f"checkpoint {where} is unreadable ({reason}); {moved}; using the checkpoint before it"
        )

    def restore_raw(self, step: int) -> tuple[dict, dict]:
        """(state as nested dicts of arrays, meta) without a target: for evaluation and videos, which
        need the actor and the normaliser but not the trainer that saved them."""
        ocp = self._ocp
        # Onto this process's first device, whatever mesh wrote it (a --devices 4 run read on one device).
        tree = self.manager.item_metadata(step)["state"].tree
        target = abstract_state(jax.tree_util.tree_map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype), tree))
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
        )
        return restored.state, dict(restored.meta)

    def close(self) -> None:
        self.manager.close()


