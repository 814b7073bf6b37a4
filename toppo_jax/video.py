"""Videos of a trained run's deterministic policy on the MuJoCo port (the rendering: `filming.py`).

    python -m toppo_jax.video --run DIR [--tasks reach,push] [--best] [--steps 500] [--camera corner]

Files go to DIR/videos/<task>_<env_steps>.mp4 (or --out), one per task: the requested tasks, else
the worst and the best task of the run's last evaluation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from toppo_jax.config import ConfigError
from toppo_jax.filming import DEFAULT_CAMERA, DEFAULT_EVERY, DEFAULT_SIZE, VIDEOS, VideoUnavailable, pick_tasks, record, resolve_video_tasks
from toppo_jax.logger import read_metrics
from toppo_jax.rundir import load_policy


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toppo_jax.video", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="run directory written by toppo_jax.train")
    parser.add_argument("--tasks", default="", help="comma-separated tasks to film (default: worst and best of the last evaluation)")
    parser.add_argument("--best", action="store_true", help="use the best-by-eval checkpoint instead of the latest")
    parser.add_argument("--steps", type=int, default=None, help="control steps to film (default: one full episode, 500)")
    parser.add_argument("--camera", default=DEFAULT_CAMERA, help="free (default), or a camera of the Meta-World model: corner2, corner3, topview, ...")
    parser.add_argument("--every", type=int, default=DEFAULT_EVERY, help="film every n-th control step (default 2: 40 fps, real time)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="frame width and height in pixels")
    parser.add_argument("--seed-index", type=int, default=0, help="which seed of a multi-seed run to film")
    parser.add_argument("--out", default=None, help="output folder (default: RUN/videos)")
    args = parser.parse_args(argv)

    try:
        if args.steps is not None and args.steps <= 0:
            raise ConfigError(f"--steps {args.steps} is not valid; it must be > 0")
        if args.every <= 0:
            raise ConfigError(f"--every {args.every} is not valid; it must be > 0")
        if args.size <= 0 or args.size % 16:
            raise ConfigError(f"--size {args.size} is not valid; give a positive multiple of 16")
        policy = load_policy(args.run, best=args.best)
        if not 0 <= args.seed_index < policy.num_seeds:
            raise ConfigError(f"--seed-index {args.seed_index} is not valid; this run has {policy.num_seeds} seed(s)")
        film = resolve_video_tasks([args.tasks] if args.tasks else [], policy.tasks, flag="--tasks")
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    evals = [line for line in read_metrics(Path(args.run) / "metrics.jsonl") if "eval/success_mean" in line]
    film = pick_tasks(policy.tasks, evals[-1] if evals else None, film)
    params, stats = policy.seed(args.seed_index)
    try:
        paths = record(
            policy.tasks, film, seed=policy.config.train.seed, impl=policy.config.env.impl,
            actor_apply=policy.networks.actor.apply, actor_params=params, obs_stats=stats,
            out_dir=args.out or Path(args.run) / VIDEOS, env_steps=policy.step, steps=args.steps, size=args.size,
            camera=args.camera, every=args.every,
        )
    except VideoUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
