"""Hyperparameter sweeps over `toppo_jax.train`, from one YAML in wandb's sweep format.

    python -m experiments.sweep wandb SWEEP.yaml [--count N]   # create a wandb sweep and run an agent here
    python -m experiments.sweep local SWEEP.yaml [--count N]   # no server: run the points here, rank them
    python -m experiments.sweep run --flag=value ...           # one point (what a wandb agent executes)

The YAML's `parameters` are train flags without dashes (`learning-rate: {values: [1e-4, 3e-4]}`,
`tasks: {value: mt10}`; `min`/`max` with `distribution: uniform | log_uniform_values` for random
search). `wandb`: `wandb.sweep` + `wandb.agent`, which runs the YAML's `command` for each point; start
more agents on other accelerators with `CUDA_VISIBLE_DEVICES=i wandb agent ENTITY/PROJECT/SWEEP_ID`.
Each run trains into `runs/sweeps/<sweep id>/<run id>` and logs to the sweep's wandb run (the trainer
adopts `WANDB_RUN_ID`). `local`: a grid (or `--count` random points) run one after the other; when
every varied parameter is an in-jit sweepable scalar (`toppo_jax.config.SWEEPABLE`), the whole grid
is ONE training run with `--sweep` (all points x seeds vmapped through one compile). Writes
`runs/sweeps/<name>/summary.json` and prints the points ranked by final mean success (then worst-k).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from experiments import runs

ROOT = runs.ROOT / "sweeps"  # runs/sweeps/<sweep>/<run>: experiments/runs.py names every experiment's runs


class SweepError(ValueError):
    """A sweep file that cannot run (one line, names the bad entry)."""


def load(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    if not path.exists():
        raise SweepError(f"sweep file {path} does not exist; examples: {', '.join(sorted(str(p) for p in Path('experiments/sweeps').glob('*.yaml')))}")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise SweepError(f"{path} is not valid YAML ({' '.join(str(err).split())[:200]})") from None
    if not isinstance(spec.get("parameters"), dict) or not spec["parameters"]:
        raise SweepError(f"{path}: no `parameters:` mapping (train flags without dashes -> {{values: [...]}} or {{value: x}})")
    method = spec.get("method", "grid")
    if method not in ("grid", "random", "bayes"):
        raise SweepError(f"{path}: method {method!r} is not valid; choose one of: grid, random, bayes")
    for name, p in spec["parameters"].items():
        if not isinstance(p, dict) or not ({"value", "values"} & set(p) or {"min", "max"} <= set(p)):
            raise SweepError(f"{path}: parameter {name!r} needs value, values, or min and max")
        if method == "grid" and "values" not in p and "value" not in p:
            raise SweepError(f"{path}: grid search needs `values` for {name!r} (min/max is for random or bayes)")
    return spec


def _draw(p: dict, rng: np.random.Generator):
    if "value" in p:
        return p["value"]
    if "values" in p:
        return p["values"][rng.integers(len(p["values"]))]
    lo, hi = float(p["min"]), float(p["max"])
    if p.get("distribution") == "log_uniform_values":
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    value = rng.uniform(lo, hi)
    return int(round(value)) if isinstance(p["min"], int) and isinstance(p["max"], int) else float(value)


def points(spec: dict, count: int | None = None, seed: int = 0) -> list[dict]:
    """The grid (every combination of `values`) or `count` random draws (bayes has no server here: random)."""
    params = spec["parameters"]
    if spec.get("method", "grid") == "grid":
        names = list(params)
        choices = [p["values"] if "values" in p else [p["value"]] for p in params.values()]
        grid = [dict(zip(names, combo)) for combo in itertools.product(*choices)]
        return grid[:count] if count else grid
    rng = np.random.default_rng(seed)
    return [{name: _draw(p, rng) for name, p in params.items()} for _ in range(count or 10)]


def to_argv(point: dict) -> list[str]:
    """{'learning-rate': 3e-4, 'actor-hidden': [64, 64]} -> ['--learning-rate', '0.0003', '--actor-hidden', '64', '64']."""
    argv = []
    for name, value in point.items():
        flag = "--" + str(name).replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def in_jit_form(spec: dict) -> tuple[list[str], str] | None:
    """(fixed argv, --sweep spec) when every varied parameter is an in-jit sweepable scalar of a grid."""
    from toppo_jax.config import SWEEPABLE

    if spec.get("method", "grid") != "grid":
        return None
    fixed, varied = {}, []
    for name, p in spec["parameters"].items():
        key = str(name).replace("-", "_")
        if "values" in p and len(p["values"]) > 1:
            if key not in SWEEPABLE:
                return None
            varied.append(f"{key}={','.join(str(float(v)) for v in p['values'])}")
        else:
            fixed[name] = p["values"][0] if "values" in p else p["value"]
    return (to_argv(fixed), " ".join(varied)) if varied else None


def _summary_row(label: str, finals: list[dict]) -> dict:
    worst = sorted(k for k in (finals[0] if finals else {}) if k.startswith("eval/success_worst_"))
    return {
        "point": label,
        "env_steps": finals[0]["env_steps"] if finals else None,
        "success_mean": float(np.mean([x["eval/success_mean"] for x in finals])) if finals else None,
        **({w: float(np.mean([x[w] for x in finals])) for w in worst}),
    }


def run_local(spec: dict, name: str, *, count: int | None = None, extra: Sequence[str] = (),
              train_main: Callable[[list[str]], int] | None = None, root: Path = ROOT, log=print) -> list[dict]:
    """Run a sweep here; returns the summary rows, best first."""
    if train_main is None:
        from toppo_jax.train import main as train_main
    out_root = Path(root) / name
    rows = []
    injit = in_jit_form(spec) if not count else None
    if injit is not None:
        fixed, sweep = injit
        out = out_root / "in-jit"
        log(f"in-jit sweep: one run, --sweep '{sweep}' -> {out}")
        code = train_main([*fixed, *extra, "--sweep", sweep, "--out", str(out)])
        if code != 0:
            raise SweepError(f"the in-jit sweep run exited with code {code}")
        by_member: dict[str, list[dict]] = {}
        for x in runs.final_evals(out):
            by_member.setdefault(runs.member_label(x), []).append(x)
        rows = [_summary_row(label, finals) for label, finals in by_member.items()]
    else:
        todo = points(spec, count)
        for i, point in enumerate(todo):
            label = ", ".join(f"{k}={v}" for k, v in point.items() if "values" in spec["parameters"][k] or "min" in spec["parameters"][k])
            out = runs.point_run(out_root, i)
            log(f"[{i + 1}/{len(todo)}] {label} -> {out}")
            code = train_main([*to_argv(point), *extra, "--out", str(out)])
            if code != 0:
                raise SweepError(f"point {i} ({label}) exited with code {code}; its run dir is {out}")
            rows.append(_summary_row(label or f"point {i}", runs.final_evals(out)))
    rows.sort(key=lambda r: (-(r["success_mean"] or -1.0), -(r.get("eval/success_worst_1") or -1.0)))
    out_root.mkdir(parents=True, exist_ok=True)
    (out_root / "summary.json").write_text(json.dumps(rows, indent=2))
    log(f"{'point':48s} {'success':>8s} {'worst-1':>8s}")
    for r in rows:
        log(f"{r['point'][:48]:48s} {r['success_mean'] if r['success_mean'] is not None else float('nan'):8.3f} "
            f"{r.get('eval/success_worst_1', float('nan')):8.3f}")  # fmt: skip
    return rows


def run_wandb(spec: dict, name: str, count: int | None) -> int:
    import wandb

    project = spec.get("project", "toppo-jax")
    sweep_id = wandb.sweep(sweep=spec, project=project)
    print(f"sweep {sweep_id} in project {project}; more agents: CUDA_VISIBLE_DEVICES=i wandb agent <entity>/{project}/{sweep_id}")
    wandb.agent(sweep_id, project=project, count=count)  # runs the YAML's command for each point
    return 0


def run_point(args: Sequence[str]) -> int:
    """One point, as a wandb agent starts it: flags as --name=value; the run dir is named by the sweep and run ids."""
    from toppo_jax.train import main as train_main

    argv = []
    for arg in args:
        flag, sep, value = arg.partition("=")
        flag = "--" + flag.lstrip("-").replace("_", "-")
        if sep and value.startswith("[") and value.endswith("]"):  # list values: --actor-hidden=[64, 64]
            argv += [flag, *[v.strip() for v in value[1:-1].split(",") if v.strip()]]
        elif sep and value in ("True", "False"):
            argv.append(flag if value == "True" else "--no-" + flag[2:])
        else:
            argv += [flag, value] if sep else [flag]
    sweep_id = os.environ.get("WANDB_SWEEP_ID", "nosweep")
    run_id = os.environ.get("WANDB_RUN_ID", "run")
    if "--out" not in argv:
        argv += ["--out", str(ROOT / sweep_id / run_id)]
    return train_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        return run_point(argv[1:])
    p = argparse.ArgumentParser(prog="python -m experiments.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["wandb", "local"])
    p.add_argument("sweep", help="a YAML in wandb's sweep format (experiments/sweeps/*.yaml)")
    p.add_argument("--count", type=int, default=None, help="points to run (random/bayes: draws; grid: the first N)")
    args, extra = p.parse_known_args(argv)
    try:
        spec = load(args.sweep)
        name = Path(args.sweep).stem
        if args.mode == "local":
            run_local(spec, name, count=args.count, extra=extra)
            return 0
        return run_wandb(spec, name, args.count)
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
