"""Named TOPPO configurations: the benchmark settings and every row of the paper's ablations, as data.

A preset is a *method* (which Critic Balancing pieces are on, which combiner on each side) on a
*benchmark* (the settings of a task set). The benchmark comes from `--tasks` (mt10: CAGrad c 0.9, as
its authors used on MT10; mt50: c 0.5, evaluations every 5M steps, worst-10 reported; any other task
list: the plain defaults), or from a `-mt10` / `-mt50` suffix of the preset's name, which also sets
the tasks. Every benchmark's budget is the Meta-World+ one, 2M env steps per task, unless
`--total-env-steps` says otherwise. Flags given after `--preset` override any field.

    python -m toppo_jax.train --preset mtppo --tasks mt50      # == --preset mtppo-mt50
    python -m toppo_jax.presets                                # the table of presets, one line each
"""

from __future__ import annotations

import difflib
import sys

from toppo_jax.combiners import COMBINERS
from toppo_jax.config import Config, ConfigError, replace

BENCHMARKS: dict[str, Config] = {
    "mt10": replace(Config(), env={"tasks": "mt10"}, toppo={"cagrad_c": 0.9},
                    train={"eval_every": 2_000_000, "worst_k": (1, 3, 5)}),
    "mt50": replace(Config(), env={"tasks": "mt50"}, toppo={"cagrad_c": 0.5},
                    train={"eval_every": 5_000_000, "worst_k": (1, 3, 5, 10)}),
}


def _method(popart: bool, layer_norm: bool, actor: str, critic: str) -> dict:
    return {"popart": popart, "critic_layer_norm": layer_norm, "actor_combiner": actor, "critic_combiner": critic}


# The ablation rows (method -> ToppoConfig fields, one-line description). TOPPO itself is the default config.
METHODS: dict[str, tuple[dict, str]] = {
    "toppo": (_method(True, True, "pcgrad", "cagrad"), "TOPPO: PopArt + LayerNorm critic + PCGrad (actor) / CAGrad (critic), the default"),
    "mtppo": (_method(False, False, "mean", "mean"), "plain multi-task PPO: no PopArt, no LayerNorm critic, mean gradients"),
    "popart": (_method(True, False, "mean", "mean"), "MT-PPO + per-task PopArt"),
    "ln_critic": (_method(False, True, "mean", "mean"), "MT-PPO + pre-activation LayerNorm critic (LN-c)"),
    "popart_ln": (_method(True, True, "mean", "mean"), "MT-PPO + PopArt + LN-c: Critic Balancing without combiners"),
    "toppo_no_popart": (_method(False, True, "pcgrad", "cagrad"), "TOPPO without PopArt (LN-c + combiners)"),
    "toppo_no_ln": (_method(True, False, "pcgrad", "cagrad"), "TOPPO without LN-c (PopArt + combiners)"),
    **{
        f"toppo_actor-{a}_critic-{c}": (_method(True, True, a, c), f"PopArt + LN-c, {a} on the actor's, {c} on the critic's per-task gradients")
        for a in COMBINERS
        for c in COMBINERS
    },
}


def benchmark_base(tasks: str | None) -> Config:
    """The settings of a task set: mt10 or mt50 (any case), else the plain defaults with those tasks."""
    key = (tasks or "mt10").strip().lower()
    if key in BENCHMARKS:
        return BENCHMARKS[key]
    return replace(Config(), env={"tasks": tasks})


def names() -> list[str]:
    """Every preset name: the benchmarks, each method, and each method with a -mt10/-mt50 suffix."""
    return [*BENCHMARKS, *METHODS, *(f"{m}-{b}" for m in METHODS for b in BENCHMARKS)]


def describe() -> str:
    """The preset names, with the 16 combiner pairs folded into one pattern."""
    rows = [m for m in METHODS if not m.startswith("toppo_actor-")]
    return (f"{', '.join([*BENCHMARKS, *rows])}, toppo_actor-<c>_critic-<c> with <c> one of {'|'.join(COMBINERS)}; "
            "each method also as NAME-mt10 / NAME-mt50")


def get_preset(name: str, tasks: str | None = None) -> Config:
    """The named config on the benchmark of `tasks` (the `--tasks` given, if any); an unknown name
    raises ConfigError with the closest names."""
    if name in BENCHMARKS:
        return BENCHMARKS[name]
    method, _, bench = name.rpartition("-")
    if bench in BENCHMARKS and method in METHODS:
        base = BENCHMARKS[bench]
    else:
        method, base = name, benchmark_base(tasks)
    if method in METHODS:
        return replace(base, toppo=METHODS[method][0])
    close = difflib.get_close_matches(name, names(), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"--preset {name!r} is unknown{hint}; valid: {describe()}")


def table() -> str:
    """A markdown table of the presets, one line each."""
    lines = ["| preset | what it is |", "|---|---|"]
    lines += [f"| `{b}` | TOPPO with the {b.upper()} settings (tasks {b}, CAGrad c {BENCHMARKS[b].toppo.cagrad_c}) |" for b in BENCHMARKS]
    lines += [f"| `{m}` | {text} |" for m, (_, text) in METHODS.items()]
    lines.append("| `NAME-mt10`, `NAME-mt50` | the method NAME with that benchmark's tasks and settings |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
    sys.exit(0)
