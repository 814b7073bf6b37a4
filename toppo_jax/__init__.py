"""TOPPO (Tail-Optimized PPO with Critic Balancing) for multi-task Meta-World, end to end in JAX.

The trainer is split by concept: `networks` (actor, LayerNorm critic, squashed Gaussian), `popart`
(per-task value normalisation), `combiners` (per-task gradient combiners and the D1/D2 diagnostics),
`ppo` (GAE with truncation, losses, normalisers, minibatching), `config` (frozen dataclasses and
validation), `train` (one jitted chunk of K iterations and the host loop), `evaluate` (the
Meta-World protocol, on the port or official Meta-World), and the run directory's artefacts:
`checkpoint` (orbax, exact resume), `logger` (metrics.jsonl and wandb), `plots` and `video`.
"""
