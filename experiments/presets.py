"""Named TOPPO configurations: the benchmark settings and the ablation ladder, as data, not scripts.

`mt10` and `mt50` are the paper's benchmarks with the Meta-World+ budget (2M env steps per task) and
the CAGrad c its authors used per benchmark. The ablations rebuild TOPPO one piece at a time on MT10:
`mtppo` (plain multi-task PPO: no PopArt, no LayerNorm critic, mean gradients), `popart` (+ per-task
PopArt), `popart_ln` (+ LayerNorm critic), then every combiner pair as
`toppo_actor-<combiner>_critic-<combiner>`. Flags given after `--preset` override any field, e.g.
`--preset mtppo --tasks mt50`.
"""

from __future__ import annotations

import difflib

from toppo_jax.combiners import COMBINERS
from toppo_jax.config import Config, ConfigError, replace

MT10 = replace(
    Config(),
    env={"tasks": "mt10"},
    toppo={"cagrad_c": 0.9},
    train={"total_env_steps": 20_000_000, "eval_every": 2_000_000, "worst_k": (1, 3, 5)},
)
MT50 = replace(
    Config(),
    env={"tasks": "mt50"},
    toppo={"cagrad_c": 0.5},
    train={"total_env_steps": 100_000_000, "eval_every": 5_000_000, "worst_k": (1, 3, 5, 10)},
)


def _method(base: Config, *, popart: bool, layer_norm: bool, actor: str, critic: str) -> Config:
    return replace(
        base, toppo={"popart": popart, "critic_layer_norm": layer_norm, "actor_combiner": actor, "critic_combiner": critic}
    )


PRESETS: dict[str, Config] = {
    "mt10": MT10,
    "mt50": MT50,
    "mtppo": _method(MT10, popart=False, layer_norm=False, actor="mean", critic="mean"),
    "popart": _method(MT10, popart=True, layer_norm=False, actor="mean", critic="mean"),
    "popart_ln": _method(MT10, popart=True, layer_norm=True, actor="mean", critic="mean"),
    **{
        f"toppo_actor-{a}_critic-{c}": _method(MT10, popart=True, layer_norm=True, actor=a, critic=c)
        for a in COMBINERS
        for c in COMBINERS
    },
}


def describe() -> str:
    """The preset names, with the 16 combiner pairs folded into one pattern."""
    return f"mt10, mt50, mtppo, popart, popart_ln, toppo_actor-<c>_critic-<c> with <c> one of {'|'.join(COMBINERS)}"


def get_preset(name: str) -> Config:
    """The named config; an unknown name raises ConfigError with the closest names."""
    if name in PRESETS:
        return PRESETS[name]
    close = difflib.get_close_matches(name, list(PRESETS), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"--preset {name!r} is unknown{hint}; valid: {describe()}")
