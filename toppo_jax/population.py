"""The members a run trains together: every sweep point (one without --sweep) x every seed, vmapped
through one compile. One member runs unbatched, so envs whose step is a host callback need no vmap rule.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from toppo_jax import config as cfg


@dataclasses.dataclass(frozen=True)
class Population:
    points: tuple[dict, ...]  # the --sweep grid points; () without --sweep
    members: tuple[tuple[dict, int], ...]  # (sweep point, seed) of each member, point-major

    @property
    def num_members(self) -> int:
        return len(self.members)

    @property
    def seeds(self) -> list[int]:
        return [seed for _, seed in self.members]

    def keys(self) -> jax.Array:
        """The members' PRNG keys: [M, 2], or one key for one member."""
        keys = jnp.stack([jax.random.PRNGKey(s) for s in self.seeds])
        return keys[0] if self.num_members == 1 else keys

    def hparams(self, config: cfg.Config) -> dict[str, jax.Array]:
        """Each traced hyperparameter at every member's sweep point: [M] float32 arrays (scalars for one member)."""
        values = {
            k: jnp.asarray([cfg.hparams(cfg.with_hparams(config, point))[k] for point, _ in self.members], jnp.float32)
            for k in cfg.SWEEPABLE
        }
        return {k: v[0] for k, v in values.items()} if self.num_members == 1 else values

    def batched(self, fn: Callable | None) -> Callable | None:
        """`fn` over every member: as is for one member, vmapped otherwise (None stays None)."""
        if fn is None or self.num_members == 1:
            return fn
        return jax.vmap(fn)

    def member(self, tree, i: int):
        """Member i's part of a (host-fetched) tree, as numpy."""
        return jax.tree_util.tree_map(lambda x: np.asarray(x) if self.num_members == 1 else np.asarray(x)[i], tree)


def make_population(config: cfg.Config) -> Population:
    train_c = config.train
    points = tuple(cfg.sweep_points(train_c.sweep))
    members = tuple((point, train_c.seed + j) for point in (points or ({},)) for j in range(train_c.num_seeds))
    return Population(points, members)
