"""Aggregate success over seeds x tasks, with stratified bootstrap confidence intervals (rliable's method).

Scores are a matrix `[runs, tasks]` of final per-task success rates, one row per seed. The aggregates:

- mean success: the mean of every entry;
- worst-k: the mean over runs of each run's k lowest per-task successes (`toppo_jax.policy.worst_k`
  of a seed, then the mean over seeds: what the trainer logs as eval/success_worst_<k> per seed,
  averaged over seeds like experiments/sweep.py and the results READMEs do);
- IQM: the mean of the middle 50% of all run x task scores (scipy.stats.trim_mean(x, 0.25) of the
  flattened matrix; Agarwal et al. 2021).

The interval is rliable's `get_interval_estimates` with its defaults (Agarwal et al. 2021, "Deep RL
at the Edge of the Statistical Precipice"): each replicate redraws, for every task independently, as
many runs as there are, with replacement, from that task's own runs (strata = tasks; tasks are not
resampled), recomputes the aggregate, and the 95% interval is the 2.5th and 97.5th percentiles of the
replicates (the percentile method). One set of replicates serves every aggregate of a matrix.
rliable itself is not a dependency: it would add arch, pandas, statsmodels and seaborn to the lock
for these few lines; tests/test_reproduce.py checks this code against hand-computed values.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

WORST_K = (1, 3, 5, 10)
REPS = 50_000  # rliable's default
CONFIDENCE = 0.95
_CHUNK = 2_000  # replicates drawn at a time (bounds memory to CHUNK x runs x tasks)


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean over the last two axes ([..., runs, tasks] -> [...]): sort the flattened
    entries, drop floor(n/4) from each end (scipy.stats.trim_mean's cut), average the rest."""
    scores = np.asarray(scores, np.float64)
    flat = np.sort(scores.reshape(*scores.shape[:-2], -1), axis=-1)
    n = flat.shape[-1]
    cut = int(0.25 * n)
    return flat[..., cut : n - cut].mean(axis=-1)


def worst_k_curve(scores: np.ndarray) -> np.ndarray:
    """Worst-k for every k = 1..T ([..., runs, tasks] -> [..., T]): per run, the mean of its k lowest
    tasks; then the mean over runs. k = T is the mean success."""
    scores = np.asarray(scores, np.float64)
    ordered = np.sort(scores, axis=-1)
    per_run = np.cumsum(ordered, axis=-1) / np.arange(1, scores.shape[-1] + 1)
    return per_run.mean(axis=-2)


def aggregates(scores: np.ndarray, ks: Sequence[int] = WORST_K) -> dict[str, np.ndarray]:
    """{'mean', 'worst_<k>' for each k <= T, 'iqm'} of [..., runs, tasks] scores, each of shape [...]."""
    scores = np.asarray(scores, np.float64)
    curve = worst_k_curve(scores)
    out = {"mean": scores.mean(axis=(-2, -1))}
    out.update({f"worst_{k}": curve[..., k - 1] for k in ks if k <= scores.shape[-1]})
    out["iqm"] = iqm(scores)
    return out


def stratified_resample(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """[reps, runs, tasks]: in each replicate and each task (column), `runs` draws with replacement
    from that task's runs (rliable's StratifiedBootstrap with task_bootstrap=False)."""
    scores = np.asarray(scores, np.float64)
    runs, tasks = scores.shape
    rows = rng.integers(runs, size=(reps, runs, tasks))
    return scores[rows, np.arange(tasks)]


def percentile_interval(replicates: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile bootstrap interval: the (1-c)/2 and (1+c)/2 quantiles of the replicates."""
    alpha = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(np.asarray(replicates, np.float64), [alpha, 100.0 - alpha])
    return float(lo), float(hi)


def interval_estimates(scores: np.ndarray, ks: Sequence[int] = WORST_K, reps: int = REPS, seed: int = 0,
                       confidence: float = CONFIDENCE) -> dict:
    """Point estimates and stratified-bootstrap intervals of a [runs, tasks] matrix:
    {'mean': (point, lo, hi), 'worst_<k>': ..., 'iqm': ..., 'worst_k_curve': [(point, lo, hi)] * T}."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"scores must be a non-empty [runs, tasks] matrix, got shape {scores.shape}")
    rng = np.random.default_rng(seed)
    points = aggregates(scores, ks)
    curve_point = worst_k_curve(scores)
    boot: dict[str, list[np.ndarray]] = {name: [] for name in points}
    boot_curve = []
    for start in range(0, reps, _CHUNK):
        sample = stratified_resample(scores, min(_CHUNK, reps - start), rng)
        for name, values in aggregates(sample, ks).items():
            boot[name].append(values)
        boot_curve.append(worst_k_curve(sample))
    out = {name: (float(points[name]), *percentile_interval(np.concatenate(boot[name]), confidence)) for name in points}
    curve = np.concatenate(boot_curve)
    out["worst_k_curve"] = [(float(curve_point[k]), *percentile_interval(curve[:, k], confidence)) for k in range(scores.shape[1])]
    return out
