"""`python -m toppo_jax.train`: the command line of a training run (an entry point; nothing imports it).

It parses the flags (`--preset`, `--tasks` and every field of `config.Config`), resolves the tasks,
validates, joins the other processes of a multi-host launch, and hands over to the host loop
(`loop.run`), which drives the learner (`learner.make_train`). Exit codes: 0 done or stopped by a
signal with a checkpoint, 2 bad input (one line naming the value and the choices), 3 diverged.
The run directory's files and metric names: `loop.py`; the CLI contract: docs/design.md, "Contracts".
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from typing import Callable, Sequence

from toppo_jax import config as cfg
from toppo_jax import distributed, presets
from toppo_jax.filming import resolve_video_tasks
from toppo_jax.loop import TrainingDivergedError, check_impl, default_make_env, run


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


def resolve_tasks(spec: str, task_catalog=None) -> tuple[str, ...]:
    """Task names for --tasks by the port's registry (`envs.resolve_tasks`: mt10, mt50, names with or
    without -v3, ported tasks only), or in `task_catalog` = (groups, names) when given (tests)."""
    from envs.registry import resolve_tasks as resolve

    groups, names = task_catalog if task_catalog is not None else (None, None)
    try:
        return tuple(resolve(spec, names=names, sets=groups))
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
        resolve_video_tasks(config.train.video_tasks, tasks)
        join_cluster(config.train.distributed)
        if make_env is None:
            check_impl(config.env.impl, tasks)  # impl=jax: every task needs its collision diet
        # A run directory of another config, or a checkpoint of another layout, is bad input too.
        run(config, tasks, make_env or default_make_env, compiler_options)
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


if __name__ == "__main__":
    sys.exit(main())
