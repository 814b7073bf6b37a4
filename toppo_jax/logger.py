"""Run logging: DIR/metrics.jsonl always, Weights & Biases when enabled, and never fatal.

metrics.jsonl is the record (one JSON object per seed per chunk; names in `toppo_jax.train`); wandb
mirrors it under the same names. wandb runs offline unless `WANDB_MODE` says otherwise (`online`,
`disabled`), writes under DIR/wandb, and keeps its run id in the checkpoint metadata so a resumed run
continues the same wandb run. With several seeds, wandb gets the mean over seeds under the standard
names and each seed's eval/success_mean as `eval/seed_<s>/success_mean`. Any wandb failure (import,
init, log, finish) is reported once and turns wandb off; training goes on.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import secrets
import string
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: str | Path) -> list[dict]:
    """Every complete line of a metrics.jsonl (a torn last line from a crash is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return lines


def truncate_metrics(path: str | Path, env_steps: int) -> list[dict]:
    """Keep the lines with env_steps <= `env_steps` (the restored checkpoint's); atomic rewrite."""
    path = Path(path)
    kept = [line for line in read_metrics(path) if int(line.get("env_steps", 0)) <= env_steps]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(line) + "\n" for line in kept))
    os.replace(tmp, path)
    return kept


def versions() -> dict[str, str]:
    """Versions of the stack (warp only if installed), without importing heavy packages."""
    out = {"python": platform.python_version()}
    for dist in ("jax", "jaxlib", "mujoco", "mujoco-mjx", "flax", "optax", "orbax-checkpoint", "metaworld", "wandb"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if importlib.util.find_spec("warp") is not None:
        try:
            out["warp"] = importlib.metadata.version("warp-lang")
        except importlib.metadata.PackageNotFoundError:
            out["warp"] = "installed"
    return out


def device_info() -> dict[str, str]:
    import jax

    device = jax.devices()[0]
    return {"backend": jax.default_backend(), "device": str(device), "device_kind": getattr(device, "device_kind", "")}


def new_run_id() -> str:
    """A wandb-style run id (8 lowercase letters and digits)."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


class Wandb:
    """A wandb run that cannot stop training: the first failure is reported and disables it."""

    def __init__(self, enabled: bool, *, project: str, run_id: str, run_dir: Path, name: str, config: Mapping,
                 warn: Callable[[str], None] = _warn):
        self.run = None
        self.failed = False
        self._wandb = None
        self._warn = warn
        if not enabled:
            return
        try:
            import wandb

            self._wandb = wandb
            mode = os.environ.get("WANDB_MODE", "offline")
            self.run = wandb.init(
                project=project,
                id=run_id,
                name=name,
                resume="allow",
                dir=str(run_dir),
                mode=mode,
                config=dict(config),
                settings=wandb.Settings(silent=True, console="off"),
            )
        except BaseException as err:  # noqa: BLE001 - wandb may raise anything, including SystemExit
            if isinstance(err, KeyboardInterrupt):
                raise
            self._fail("init", err)

    @property
    def active(self) -> bool:
        return self.run is not None

    def _fail(self, what: str, err: BaseException) -> None:
        if not self.failed:
            self._warn(f"wandb {what} failed ({type(err).__name__}: {err}); training continues without wandb")
        self.failed = True
        self.run = None

    def _call(self, what: str, fn, *args, **kwargs):
        if self.run is None:
            return
        try:
            fn(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001
            if isinstance(err, KeyboardInterrupt):
                raise
            self._fail(what, err)

    def log(self, data: Mapping[str, Any], step: int) -> None:
        if self.run is not None:
            self._call("log", self.run.log, dict(data), step=step)

    def summary(self, data: Mapping[str, Any]) -> None:
        if self.run is not None:
            self._call("summary", self.run.summary.update, dict(data))

    def video(self, key: str, path: str | Path, step: int, caption: str = "") -> None:
        if self.run is not None:
            self._call("video", lambda: self.run.log({key: self._wandb.Video(str(path), caption=caption, format="mp4")}, step=step))

    def finish(self) -> None:
        if self.run is not None:
            self._call("finish", self.run.finish)
            self.run = None


def mean_over_seeds(lines: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One wandb record for a chunk: numeric keys averaged over seeds, plus per-seed eval success."""
    if len(lines) == 1:
        return {k: v for k, v in lines[0].items() if k != "seed"}
    keys = sorted({k for line in lines for k in line if k not in ("seed", "member") and not k.startswith("hp/")})
    out: dict[str, Any] = {}
    for key in keys:
        values = [line[key] for line in lines if isinstance(line.get(key), (int, float))]
        if values:
            out[key] = float(np.mean(values))
    for line in lines:
        if "eval/success_mean" in line:
            # Sweep members (same seed, other hyperparameters) are told apart by their index.
            who = f"member_{line['member']}_seed_{line['seed']}" if "member" in line else f"seed_{line['seed']}"
            out[f"eval/{who}/success_mean"] = line["eval/success_mean"]
    return out


class RunLogger:
    """Appends chunk lines to DIR/metrics.jsonl and mirrors them to wandb."""

    def __init__(self, out: Path, *, resume: bool, wandb_run: Wandb):
        self.path = Path(out) / METRICS_FILE
        self.wandb = wandb_run
        self._file = open(self.path, "a" if resume else "w")

    def log(self, lines: Sequence[Mapping[str, Any]]) -> None:
        for line in lines:
            self._file.write(json.dumps(line) + "\n")
        self._file.flush()
        if lines:
            self.wandb.log(mean_over_seeds(lines), step=int(lines[0]["env_steps"]))

    def rewind(self, env_steps: int) -> None:
        """Drop the lines after `env_steps` (a NaN rollback restored that checkpoint) and go on appending."""
        self._file.close()
        truncate_metrics(self.path, env_steps)
        self._file = open(self.path, "a")

    def close(self) -> None:
        self._file.close()
        self.wandb.finish()
