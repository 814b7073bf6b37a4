"""Plain data types shared by the env core, the tasks and the physics backends.

``Frame`` / ``Kinematics`` are what a physics backend reports after each control step (after the
official ``mj_forward``): world positions, MuJoCo quaternions (w, x, y, z) and rotation matrices of
the frames a task reads, plus ``qpos``/``qvel``. Task code only ever sees these, so it does not
know which backend ran. ``State`` is the Brax/Playground-style env state.

The ``OBS_*`` names are the layout of the 39-d Meta-World observation (``SawyerXYZEnv._get_obs``):
an 18-d frame (hand position, gripper distance, two objects as position + quaternion, zero-padded
when a task has one object), the previous step's 18-d frame, then the goal. Index an observation
with them on its last axis: ``obs[..., OBS_GOAL]``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import struct

OBS_SIZE = 39
OBS_HAND = slice(0, 3)  # hand (end-effector body) position, clipped to the observation box
OBS_GRIPPER = 3  # gripper opening: |right claw - left claw| / 0.1, clipped to [0, 1] (an index, not a slice)
OBS_OBJ1 = slice(4, 11)  # first object: position + quaternion (w, x, y, z)
OBS_OBJ1_POS = slice(4, 7)
OBS_OBJ1_QUAT = slice(7, 11)
OBS_OBJ2 = slice(11, 18)  # second object (zeros when the task has one)
OBS_OBJ2_POS = slice(11, 14)
OBS_OBJ2_QUAT = slice(14, 18)
OBS_OBJECTS = slice(4, 18)  # both object blocks (14 values, zero-padded)
OBS_FRAME = slice(0, 18)  # the current frame: hand, gripper, objects
OBS_PREV = slice(18, 36)  # the previous step's frame (the reset frame at the first step)
OBS_GOAL = slice(36, 39)  # the goal position (official _get_pos_goal)
FRAME_SIZE = OBS_FRAME.stop
OBJECTS_SIZE = OBS_OBJECTS.stop - OBS_OBJECTS.start


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
