"""Where experiments put their runs and how they read them back: one naming for sweeps and tables.

Every experiment trains into `runs/<kind>/<name>/<run>` (`run_dir`): a local sweep into
`runs/sweeps/<sweep>/<point index>` (or `.../in-jit` for one `--sweep` run), a reproduction table into
`runs/reproduce/<table>/<row>/seed<S>` (`seed_run`). A run directory may hold several members
(`--num-seeds`, `--sweep`); `final_evals` returns the last evaluation of each member and
`member_label` names a member by its sweep point. `run_state` says whether a run reached its
budget, stopped on the way, or failed (from the `status.json` a launcher leaves beside the run).
"""

from __future__ import annotations

import json
from pathlib import Path

from toppo_jax.logger import METRICS_FILE, read_metrics

ROOT = Path("runs")
STATUS_FILE = "status.json"  # written by a launcher after each training process (experiments.reproduce)

# States of a run, as `run_state` reports them.
DONE = "done"  # its final evaluation is at or past its budget
DIVERGED = "diverged"  # the trainer stopped on non-finite values (exit code 3)
FAILED = "failed"  # any other non-zero exit (bad flags, a crash, killed)
STOPPED = "stopped"  # exited cleanly before the budget (a signal): rerunning resumes it
MISSING = "missing"  # never started


def run_dir(kind: str, name: str, *parts: str | int, root: Path = ROOT) -> Path:
    """runs/<kind>/<name>/<part>/...: kind `sweeps` or `reproduce`; parts name the run inside."""
    return Path(root) / kind / name / Path(*map(str, parts)) if parts else Path(root) / kind / name


def point_run(sweep_root: Path, index: int) -> Path:
    """The run of a sweep's point `index`: <sweep root>/000, 001, ..."""
    return Path(sweep_root) / f"{index:03d}"


def seed_run(table_root: Path, row: str, seed: int) -> Path:
    """The run of one (row, seed) of a table: <table root>/<row>/seed<S>."""
    return Path(table_root) / row / f"seed{seed}"


def member_label(line: dict) -> str:
    """A member's sweep point as 'name=value, ...' (hp/* fields of its metrics lines); '' without --sweep."""
    return ", ".join(f"{k[3:]}={line[k]:g}" for k in sorted(line) if k.startswith("hp/"))


def final_evals(run: Path) -> list[dict]:
    """The metrics line of every member (seed x sweep point) at the run's last evaluated env step."""
    lines = [x for x in read_metrics(Path(run) / METRICS_FILE) if "eval/success_mean" in x]
    last = max((x["env_steps"] for x in lines), default=None)
    return [x for x in lines if x["env_steps"] == last]


def read_status(run: Path) -> dict:
    path = Path(run) / STATUS_FILE
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}


def write_status(run: Path, status: dict) -> None:
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    tmp = run / f".{STATUS_FILE}.tmp"
    tmp.write_text(json.dumps(status, indent=2))
    tmp.replace(run / STATUS_FILE)


def run_state(run: Path, target_env_steps: int) -> tuple[str, str | None]:
    """(state, error line or None) of a run that should train `target_env_steps` env steps per member.

    DONE when its last evaluation is at or past the target, whatever any earlier session said;
    else the launcher's last verdict (DIVERGED/FAILED with the trainer's error line); else STOPPED if
    it has metrics or a config, MISSING if nothing was written.
    """
    run = Path(run)
    finals = final_evals(run)
    if finals and finals[0]["env_steps"] >= target_env_steps:
        return DONE, None
    status = read_status(run)
    if status.get("state") in (DIVERGED, FAILED):
        return status["state"], status.get("error")
    if (run / METRICS_FILE).exists() or (run / "config.json").exists():
        return STOPPED, None
    return MISSING, None
