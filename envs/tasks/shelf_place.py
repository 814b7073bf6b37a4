"""shelf-place-v3 (metaworld/envs/sawyer_shelf_place_v3.py): pick up the block and place it on the shelf.

Official obs and reward are pick-place-v3's (same object frames, same compute_reward and evaluate_state) up to
three places, which the task overrides: the base class's caging reward as the grasp term, a 0.025 lift radius, and
in_place reduced below and in front of the shelf after the reward's hamacher term.
"""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import read_attrs, tcp_center
from envs.tasks.pick_place import TARGET_RADIUS, PickPlace, v1_pick_place_reward


class ShelfPlace(PickPlace):
    name = "shelf-place"
    lift_radius = 0.025

    def object_grasped(self, action, obj, kin, c):
        return rewards.gripper_caging_reward(
            action, obj, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"), tcp=tcp_center(kin),
            obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], obj_radius=0.02, pad_success_thresh=0.05,
            object_reach_radius=0.01, xz_thresh=0.01, high_density=False,
        )

    def reduce_in_place(self, in_place, obj, target):
        below_shelf = (0.0 < obj[2]) & (obj[2] < 0.24) & (target[0] - 0.15 < obj[0]) & (obj[0] < target[0] + 0.15)
        in_front = below_shelf & (target[1] - 3 * TARGET_RADIUS < obj[1]) & (obj[1] < target[1])
        z_scaling = (0.24 - obj[2]) / 0.24
        y_scaling = (obj[1] - (target[1] - 3 * TARGET_RADIUS)) / (3 * TARGET_RADIUS)
        bound_loss = rewards.hamacher_product(y_scaling, z_scaling)
        in_place = jnp.where(in_front, jnp.clip(in_place - bound_loss, 0.0, 1.0), in_place)
        return jnp.where(below_shelf & (obj[1] > target[1]), 0.0, in_place)

    def constants_v1(self, env):
        return read_attrs(env, "heightTarget", "objHeight", "maxPlacingDist")

    def reward_v1(self, obs, action, kin, c):
        """Official V1: pick-place's, line for line (goal on the shelf)."""
        return v1_pick_place_reward(obs, action, kin, c)


TASKS = (ShelfPlace(),)
