"""Issue 20 item 6: the log-std clip and the advantage normalisation, MT10 on CPU, 1M env steps, seeds 0 and 1."""
import json, sys
from pathlib import Path
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

BASE = Path("/work/main/docs/results/mt10-toppo-vs-mtppo-cpu")
RUNS = Path("/work/runs/item6")
OUT = Path("/work/main/docs/results/mt10-item6-cpu")
VARIANTS = {
    "default (hard clip, per-iteration adv. norm)": [BASE / "toppo", BASE / "toppo-seed1"],
    "soft clip (--log-std-clip soft)": [RUNS / "softclip-s0", RUNS / "softclip-s1"],
    "per-minibatch adv. norm (--advantage-norm minibatch)": [RUNS / "mbnorm-s0", RUNS / "mbnorm-s1"],
}
LIMIT = 1_000_000


def load(run):
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    return [l for l in lines if l["env_steps"] <= LIMIT]


def train_series(lines, key):
    xs = [(l["env_steps"], l[key]) for l in lines if key in l]
    return np.array(xs).T if xs else np.zeros((2, 0))


def mean_log_std(l):
    v = [x for k, x in l.items() if k.startswith("train/log_std/")]
    return float(np.mean(v)) if v else None


result = {}
for name, runs in VARIANTS.items():
    per_seed = []
    for run in runs:
        lines = load(run)
        evals = {l["env_steps"]: l for l in lines if "eval/success_mean" in l}
        late = [l for l in lines if 250_000 < l["env_steps"] <= 500_000]  # a window every run covers
        per_seed.append({
            "run": str(run), "last_env_steps": lines[-1]["env_steps"],
            "eval": {str(s): {"mean": e["eval/success_mean"], "worst_3": e["eval/success_worst_3"],
                              "per_task": {k.split("/")[-1]: v for k, v in e.items() if k.startswith("eval/success/")}}
                     for s, e in sorted(evals.items())},
            "entropy_250k_500k": float(np.mean([l["train/entropy"] for l in late])),
            "log_std_250k_500k": float(np.mean([mean_log_std(l) for l in late if mean_log_std(l) is not None])),
            "approx_kl_250k_500k": float(np.mean([l["train/approx_kl"] for l in late])),
            "clip_frac_250k_500k": float(np.mean([l["train/clip_frac"] for l in late])),
            "train_success_250k_500k": float(np.mean([l["train/success_mean"] for l in late if "train/success_mean" in l])),
        })
    steps = sorted(set.intersection(*[set(p["eval"]) for p in per_seed]), key=int)
    result[name] = {
        "seeds": per_seed,
        "mean_over_seeds": {s: {"mean": float(np.mean([p["eval"][s]["mean"] for p in per_seed])),
                                "worst_3": float(np.mean([p["eval"][s]["worst_3"] for p in per_seed]))} for s in steps},
        **{k: float(np.mean([p[k] for p in per_seed])) for k in
           ("entropy_250k_500k", "log_std_250k_500k", "approx_kl_250k_500k", "clip_frac_250k_500k", "train_success_250k_500k")},
    }

OUT.mkdir(parents=True, exist_ok=True)
(OUT / "item6.json").write_text(json.dumps(result, indent=1))
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for (name, runs), color in zip(VARIANTS.items(), ("C0", "C1", "C2")):
    for i, run in enumerate(runs):
        lines = load(run)
        ls = [(l["env_steps"], mean_log_std(l)) for l in lines if mean_log_std(l) is not None]
        x, y = train_series(lines, "train/success_mean")
        axes[0].plot(x, y, color=color, alpha=0.8, ls="-" if i == 0 else "--", label=f"{name} s{i}")
        axes[1].plot(*np.array(ls).T, color=color, alpha=0.8, ls="-" if i == 0 else "--")
        x, y = train_series(lines, "train/approx_kl")
        axes[2].plot(x, y, color=color, alpha=0.8, ls="-" if i == 0 else "--")
axes[0].set_title("training episodes' success (mean over tasks)"); axes[1].set_title("actor log-std (mean over tasks)")
axes[2].set_title("approx KL per update")
for a in axes: a.set_xlabel("env steps")
axes[0].legend(fontsize=6)
fig.tight_layout(); fig.savefig(OUT / "item6.png", dpi=110)
for name, r in result.items():
    print(name, {s: (round(v["mean"], 3), round(v["worst_3"], 2)) for s, v in r["mean_over_seeds"].items()},
          "per seed:", [{s: round(e["mean"], 3) for s, e in p["eval"].items()} for p in r["seeds"]],
          f"H {r['entropy_250k_500k']:.2f} logstd {r['log_std_250k_500k']:.2f} kl {r['approx_kl_250k_500k']:.4f} clip {r['clip_frac_250k_500k']:.3f} train-succ {r['train_success_250k_500k']:.3f}")
