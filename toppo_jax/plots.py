"""Plots of a run's metrics.jsonl, and a comparison of runs across seeds.

    python -m toppo_jax.plots --run DIR                      # DIR/plots/*.png (also redrawn at every evaluation)
    python -m toppo_jax.plots --runs D1 D2 ... --out cmp.png [--labels A B ...]
    python -m toppo_jax.plots --runs D1 D2 ... --out d1d2.png --diagnostics   # D1/D2 per group, medians in d1d2.json

One run gives four figures in DIR/plots/: `success.png` (evaluation mean and worst-k success vs env
steps, training-episode success for reference), `success_per_task.png` (per-task evaluation success
over time as a heatmap), `diagnostics.png` (D1 = log10 of the max/min per-task squared gradient norm,
D2 = mean off-diagonal cosine between per-task gradients, critic and actor) and `popart_sigma.png`
(per-task PopArt return scale). With several seeds in one run (`--num-seeds`) curves are the mean
over seeds with a ± std band.

The comparison groups runs by their run-defining config without the seed (or by `--labels`, one
per run: runs with the same label form one group), draws each group's mean ± std of evaluation
success over seeds, and the IQM of final success: the interquartile mean over all (seed, task) final
scores of the group (Agarwal et al. 2021, rliable), with each seed's final mean success as points.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from toppo_jax.logger import METRICS_FILE, read_metrics

PLOTS = "plots"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _steps_fmt(x, _pos=None) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:g}{suffix}"
    return f"{x:g}"


def series(lines: Sequence[Mapping], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(env steps, mean over seeds, std over seeds) of `key` at the env steps where it was logged."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for line in lines:
        if key in line and line[key] is not None:
            by_step[int(line["env_steps"])].append(float(line[key]))
    steps = np.array(sorted(by_step), dtype=np.float64)
    mean = np.array([np.mean(by_step[s]) for s in sorted(by_step)])
    std = np.array([np.std(by_step[s]) for s in sorted(by_step)])
    return steps, mean, std


def _keys(lines: Sequence[Mapping], prefix: str) -> list[str]:
    seen: dict[str, None] = {}
    for line in lines:
        for key in line:
            if key.startswith(prefix):
                seen.setdefault(key, None)
    return list(seen)


def _band(ax, steps, mean, std, label, **kwargs):
    (line,) = ax.plot(steps, mean, label=label, **kwargs)
    if np.any(std > 0):
        ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def _finish(ax, title: str, ylabel: str, xlabel: str = "env steps (per seed)"):
    from matplotlib.ticker import FuncFormatter

    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_formatter(FuncFormatter(_steps_fmt))
    ax.grid(True, alpha=0.3)


def _save(fig, path: Path) -> Path:
    """Lay out, write (100 dpi) and close a figure; returns its path."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def _worst_k_keys(lines) -> list[str]:
    keys = [k for k in _keys(lines, "eval/success_worst_")]
    return sorted(keys, key=lambda k: int(k.rsplit("_", 1)[1]))


def plot_success(lines, path: Path, title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    steps, mean, std = series(lines, "eval/success_mean")
    if len(steps):
        _band(ax, steps, mean, std, "eval mean", marker="o", linewidth=2)
    for key in _worst_k_keys(lines):
        s, m, sd = series(lines, key)
        _band(ax, s, m, sd, f"eval worst-{key.rsplit('_', 1)[1]}", marker=".")
    s, m, sd = series(lines, "train/success_mean")
    if len(s):
        _band(ax, s, m, sd, "training episodes", color="grey", linestyle=":", linewidth=1)
    ax.set_ylim(-0.02, 1.02)
    _finish(ax, f"Success vs env steps — {title}", "success rate")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def plot_task_heatmap(lines, path: Path, title: str) -> Path | None:
    keys = _keys(lines, "eval/success/")
    if not keys:
        return None
    plt = _pyplot()
    tasks = [k[len("eval/success/") :] for k in keys]
    steps = series(lines, keys[0])[0]
    grid = np.full((len(tasks), len(steps)), np.nan)
    for i, key in enumerate(keys):
        s, m, _ = series(lines, key)
        index = {v: j for j, v in enumerate(steps)}
        for v, x in zip(s, m):
            if v in index:
                grid[i, index[v]] = x
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(steps) + 3), max(3, 0.25 * len(tasks) + 1.5)))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(tasks)), tasks, fontsize=7 if len(tasks) > 20 else 9)
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 10)).round().astype(int))
    ax.set_xticks(ticks, [_steps_fmt(steps[j]) for j in ticks])
    ax.set_xlabel("env steps (per seed) at evaluation")
    ax.set_title(f"Per-task evaluation success — {title}")
    fig.colorbar(image, ax=ax, label="success rate")
    return _save(fig, path)


def plot_diagnostics(lines, path: Path, title: str) -> Path | None:
    if not any("train/d1" in line for line in lines):
        return None
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    panels = ((ax1, "d1", "D1: scale spread of per-task gradients", "log10(max / min |g_i|²)"),
              (ax2, "d2", "D2: co-linearity of per-task gradients", "mean off-diagonal cosine"))  # fmt: skip
    for ax, name, heading, ylabel in panels:
        for key, label in ((f"train/{name}", "critic"), (f"train/actor_{name}", "actor")):
            s, m, sd = series(lines, key)
            if len(s):
                _band(ax, s, m, sd, label)
        _finish(ax, heading, ylabel)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def plot_popart_sigma(lines, path: Path, title: str) -> Path | None:
    keys = _keys(lines, "train/popart_sigma/")
    if not keys:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9 if len(keys) > 10 else 7, 4.5))
    colors = plt.get_cmap("tab20" if len(keys) > 10 else "tab10")
    for i, key in enumerate(keys):
        s, m, sd = series(lines, key)
        _band(ax, s, m, sd, key[len("train/popart_sigma/") :], color=colors(i % colors.N), linewidth=1)
    ax.set_yscale("log")
    _finish(ax, f"Per-task PopArt return scale σ — {title}", "σ (log scale)")
    ax.legend(fontsize=6 if len(keys) > 10 else 8, ncol=2 if len(keys) > 10 else 1, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def _title(run_dir: Path) -> str:
    """'<run> (<tasks>, seed 0)': the task spec when short (mt10, reach), else the number of tasks."""
    try:
        saved = json.loads((run_dir / "config.json").read_text())
        spec, seeds = saved["config"]["env"]["tasks"], saved.get("seeds", [])
        tasks = spec if len(spec) <= 24 else f"{len(saved['tasks'])} tasks"
        return f"{run_dir.name} ({tasks}, seed{'s' if len(seeds) > 1 else ''} {','.join(map(str, seeds))})"
    except (OSError, KeyError, ValueError, TypeError):
        return run_dir.name


def _member_label(line: Mapping) -> str:
    return ", ".join(f"{k[3:]}={line[k]:g}" for k in sorted(line) if k.startswith("hp/")) or f"member {line['member']}"


def plot_sweep(lines, path: Path, title: str) -> Path:
    """Eval success of every sweep point (mean ± std over its seeds) vs env steps; the legend ranks the
    points by their last mean success."""
    plt = _pyplot()
    by_point: dict[str, list[dict]] = defaultdict(list)
    for line in lines:
        if "member" in line:
            by_point[_member_label(line)].append(line)
    final = {}
    for label, point_lines in by_point.items():
        means = series(point_lines, "eval/success_mean")[1]
        final[label] = float(means[-1]) if len(means) else float("nan")
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for label in sorted(by_point, key=lambda lb: -np.nan_to_num(final[lb], nan=-1.0)):
        steps, mean, std = series(by_point[label], "eval/success_mean")
        if len(steps):
            _band(ax, steps, mean, std, f"{label} ({final[label]:.2f})", marker=".")
    ax.set_ylim(-0.02, 1.02)
    _finish(ax, f"In-jit sweep: eval success per point — {title}", "success rate")
    ax.legend(loc="best", fontsize=7)
    return _save(fig, path)


def plot_run(run_dir: str | Path) -> list[Path]:
    """Draw every figure of one run into DIR/plots/ (atomically: a viewer never sees a torn PNG)."""
    run_dir = Path(run_dir)
    lines = read_metrics(run_dir / METRICS_FILE)
    if not lines:
        raise FileNotFoundError(f"--run {run_dir} has no metrics in {run_dir / METRICS_FILE}")
    out = run_dir / PLOTS
    out.mkdir(parents=True, exist_ok=True)
    title = _title(run_dir)
    written = []
    if any("member" in line for line in lines):
        tmp = out / f".sweep.png.{os.getpid()}.tmp.png"
        plot_sweep(lines, tmp, title)
        os.replace(tmp, out / "sweep.png")
        written.append(out / "sweep.png")
    for name, fn in (
        ("success.png", plot_success),
        ("success_per_task.png", plot_task_heatmap),
        ("diagnostics.png", plot_diagnostics),
        ("popart_sigma.png", plot_popart_sigma),
    ):
        tmp = out / f".{name}.{os.getpid()}.tmp.png"
        if fn(lines, tmp, title) is not None:
            os.replace(tmp, out / name)
            written.append(out / name)
    return written


# --------------------------------------------------------------------------------- comparison


def iqm(scores) -> float:
    """Interquartile mean: the mean of the middle 50% of the scores (scipy.stats.trim_mean, 0.25)."""
    x = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    cut = int(0.25 * len(x))
    return float(np.mean(x[cut : len(x) - cut]))


def _run_seeds(run_dir: Path) -> dict[int, list[dict]]:
    lines = read_metrics(run_dir / METRICS_FILE)
    if not lines:
        raise FileNotFoundError(f"--runs: {run_dir} has no metrics in {run_dir / METRICS_FILE}")
    by_seed: dict[int, list[dict]] = defaultdict(list)
    for line in lines:
        by_seed[int(line.get("seed", 0))].append(line)
    return by_seed


def _group_key(run_dir: Path) -> tuple[str, dict]:
    from toppo_jax.rundir import config_fingerprint

    saved = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    fp = config_fingerprint(saved.get("config", {}), saved.get("tasks", []))
    for key in ("train.seed", "train.num_seeds"):
        fp.pop(key, None)
    return json.dumps(fp, sort_keys=True), fp


def _short(value, width: int = 24) -> str:
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _labels_from_configs(fps: list[dict]) -> list[str]:
    """Each group named by the config fields that differ between groups (at most three)."""
    varying = sorted(k for k in set().union(*fps) if len({json.dumps(fp.get(k)) for fp in fps}) > 1)
    if not varying:
        return [_short(fps[0].get("env.tasks", "run")) for _ in fps]
    labels = [", ".join(f"{k.split('.', 1)[1]}={_short(fp.get(k))}" for k in varying[:3]) for fp in fps]
    if len(set(labels)) < len(labels):  # shortened into each other: number them (--labels names them)
        labels = [f"#{i + 1} {label}" for i, label in enumerate(labels)]
    return labels


def _groups(run_dirs: Sequence[str | Path], labels: Sequence[str] | None, until: int | None = None) -> tuple[list[str], list[dict]]:
    """(group names, groups {"fp", "seeds": [metrics lines of one seed, ...]}): runs grouped by config without
    the seed, or by label; only lines up to `until` env steps when given."""
    run_dirs = [Path(d) for d in run_dirs]
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(f"--labels has {len(labels)} names for {len(run_dirs)} runs; give one per run")
    groups: dict[str, dict] = {}
    for i, run_dir in enumerate(run_dirs):
        key, fp = (labels[i], {}) if labels is not None else _group_key(run_dir)
        group = groups.setdefault(key, {"fp": fp, "seeds": []})
        group["seeds"].extend([line for line in lines if until is None or line["env_steps"] <= until]
                              for lines in _run_seeds(run_dir).values())
    names = list(groups) if labels is not None else _labels_from_configs([g["fp"] for g in groups.values()])
    return names, list(groups.values())


DIAGNOSTICS = (("train/d1", "critic D1 = log10 max/min |g_i|²"), ("train/d2", "critic D2 = mean cosine(g_i, g_j)"),
               ("train/d1_shared", "critic D1, shared parameters only"), ("train/d2_shared", "critic D2, shared parameters only"),
               ("train/actor_d1", "actor D1"), ("train/actor_d2", "actor D2"))


def plot_diagnostics_comparison(run_dirs: Sequence[str | Path], out_png: str | Path,
                                labels: Sequence[str] | None = None, until: int | None = None) -> tuple[Path, dict]:
    """D1/D2 of the critic and the actor over training, one curve per group (mean over seeds); returns
    (PNG path, {group: {key: median over every logged chunk and seed}}), the medians also in PNG.json."""
    names, groups = _groups(run_dirs, labels, until)
    plt = _pyplot()
    fig, axes = plt.subplots(3, 2, figsize=(12, 10.5))
    medians: dict[str, dict] = {}
    for i, (name, group) in enumerate(zip(names, groups)):
        medians[name] = {}
        for ax, (key, title) in zip(axes.flat, DIAGNOSTICS):
            curves = [series(seed_lines, key) for seed_lines in group["seeds"]]
            curves = [c for c in curves if len(c[0])]
            if not curves:
                continue
            common = sorted(set.intersection(*(set(c[0].tolist()) for c in curves)))
            values = np.array([[dict(zip(c[0].tolist(), c[1]))[step] for step in common] for c in curves])
            _band(ax, np.array(common), values.mean(axis=0), values.std(axis=0), f"{name} (n={len(curves)})", color=f"C{i}")
            medians[name][key] = float(np.median(values))
            _finish(ax, title, key.removeprefix("train/"))
    for ax in axes.flat:
        ax.legend(fontsize=8, loc="best")
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    out_png.with_suffix(".json").write_text(json.dumps(medians, indent=2))
    return _save(fig, out_png), medians


def plot_comparison(run_dirs: Sequence[str | Path], out_png: str | Path, labels: Sequence[str] | None = None) -> Path:
    """Mean ± std over seeds of eval success per group, and IQM of final success; returns the PNG path."""
    names, groups = _groups(run_dirs, labels)
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    iqms, finals = [], []
    for name, group in zip(names, groups):
        curves = [series(seed_lines, "eval/success_mean") for seed_lines in group["seeds"]]
        curves = [c for c in curves if len(c[0])]
        if not curves:
            raise ValueError(f"--runs: group {name!r} has no evaluation in its metrics")
        common = sorted(set.intersection(*(set(c[0].tolist()) for c in curves)))
        values = np.array([[dict(zip(c[0].tolist(), c[1]))[s] for s in common] for c in curves])
        _band(ax1, np.array(common), values.mean(axis=0), values.std(axis=0), f"{name} (n={len(curves)})", marker=".")
        # Final per-task scores of every seed, pooled for the IQM.
        last_eval = [[line for line in seed_lines if "eval/success_mean" in line][-1] for seed_lines in group["seeds"]]
        per_task = [v for line in last_eval for k, v in line.items() if k.startswith("eval/success/")]
        iqms.append(iqm(per_task))
        finals.append([line["eval/success_mean"] for line in last_eval])
    ax1.set_ylim(-0.02, 1.02)
    _finish(ax1, "Evaluation success (mean ± std over seeds)", "success rate")
    ax1.legend(fontsize=8, loc="lower right")
    x = np.arange(len(names))
    ax2.bar(x, iqms, color=[f"C{i}" for i in range(len(names))], alpha=0.7, label="IQM (seeds × tasks)")
    for i, values in enumerate(finals):
        ax2.scatter(np.full(len(values), i), values, color="black", s=12, zorder=3, label="final mean, per seed" if i == 0 else None)
    ax2.set_xticks(x, [textwrap.fill(name, 22) for name in names], fontsize=7)
    ax2.set_ylim(0, 1.02)
    ax2.set_ylabel("final success rate")
    ax2.set_title("IQM of final success")
    ax2.legend(fontsize=8, loc="best")
    ax2.grid(True, axis="y", alpha=0.3)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, out_png)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toppo_jax.plots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="run directory: draw DIR/plots/*.png")
    parser.add_argument("--runs", nargs="+", help="run directories to compare (seeds of one config are grouped)")
    parser.add_argument("--out", help="PNG path of the comparison (with --runs)")
    parser.add_argument("--labels", nargs="+", help="one label per --runs directory; equal labels form one group")
    parser.add_argument("--diagnostics", action="store_true",
                        help="with --runs: compare D1/D2 of the critic and the actor instead (medians in OUT.json)")
    parser.add_argument("--until", type=int, default=None, help="with --diagnostics: only env steps up to this many")
    args = parser.parse_args(argv)
    try:
        if bool(args.run) == bool(args.runs):
            raise ValueError("give either --run DIR or --runs DIR1 DIR2 ... --out PNG")
        if args.run:
            for path in plot_run(args.run):
                print(path)
        else:
            if not args.out:
                raise ValueError("--runs needs --out PNG")
            if args.diagnostics:
                path, medians = plot_diagnostics_comparison(args.runs, args.out, args.labels, args.until)
                print(path)
                print(json.dumps(medians, indent=2))
            else:
                print(plot_comparison(args.runs, args.out, args.labels))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
