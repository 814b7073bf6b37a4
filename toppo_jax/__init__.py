"""TOPPO (Tail-Optimized PPO with Critic Balancing) for multi-task Meta-World, end to end in JAX.

Layers, imports only downward (docs/architecture.md; tests/test_layering.py):
- core (jax, flax, optax): `networks`, `ppo`, `popart`, `combiners`, `learner` (TrainState and the
  jitted `make_train`), `policy` (the observation -> action chain and the Meta-World protocol);
- config: `config` (frozen dataclasses, validation), `presets` (the benchmark settings and ablations);
- runtime (core + config + `envs`): `loop` (the host loop), `rundir`, `checkpoint`, `sharding`,
  `distributed`, `population`, `logger`, `plots`, `filming`;
- entry points: `train`, `evaluate`, `video` (`python -m toppo_jax.<name>`).
"""
