"""Plain data types shared by the env core, the tasks and the physics backends.

``Frame`` / ``Kinematics`` are what a physics backend reports after each control step (after the
official ``mj_forward``): world positions, MuJoCo quaternions (w, x, y, z) and rotation matrices of
the frames a task reads, plus ``qpos``/``qvel``. Task code only ever sees these, so it does not
know which backend ran. ``State`` is the Brax/Playground-style env state.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import struct


@struct.dataclass
class Frame:
    pos: jax.Array  # [3] world position (xpos / site_xpos / geom_xpos)
    quat: jax.Array  # [4] world orientation, MuJoCo (w, x, y, z)
    mat: jax.Array  # [3, 3] world rotation matrix (xmat), row-major as in MuJoCo


@struct.dataclass
class Kinematics:
    frames: dict[str, Frame]  # keys "body:<name>", "site:<name>", "geom:<name>"
    qpos: jax.Array
    qvel: jax.Array

    def pos(self, key: str) -> jax.Array:
        return self.frames[key].pos


@struct.dataclass
class State:
    """Env state. ``data`` belongs to the physics backend; everything else is backend-independent."""

    data: Any
    obs: jax.Array
    reward: jax.Array
    done: jax.Array
    metrics: dict[str, jax.Array]
    info: dict[str, Any]
