"""shelf-place-v3 (metaworld/envs/sawyer_shelf_place_v3.py): pick up the block and place it on the shelf."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, tcp_center

TARGET_RADIUS = 0.05


class ShelfPlace(Task):
    name = "shelf-place"
    frames = ("body:obj", "geom:objGeom")

    def objects(self, kin, c):
        return kin.pos("body:obj"), rewards.scipy_quat_from_matrix(kin.frames["geom:objGeom"].mat)

    def evaluate(self, obs, action, kin, c):
        tcp, obj, tcp_opened, target = tcp_center(kin), obs[4:7], obs[3], c["target_pos"]
        obj_to_target = jnp.linalg.norm(obj - target)
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        in_place_margin = jnp.linalg.norm(c["obj_init_pos"] - target)
        in_place = rewards.tolerance(obj_to_target, bounds=(0, TARGET_RADIUS), margin=in_place_margin, sigmoid="long_tail")
        object_grasped = rewards.gripper_caging_reward(
            action, obj, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"), tcp=tcp,
            obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], obj_radius=0.02, pad_success_thresh=0.05,
            object_reach_radius=0.01, xz_thresh=0.01, high_density=False,
        )
        reward = rewards.hamacher_product(object_grasped, in_place)

        # in_place is reduced AFTER the reward's hamacher term: it only feeds the lift bonus and the info.
        below_shelf = (0.0 < obj[2]) & (obj[2] < 0.24) & (target[0] - 0.15 < obj[0]) & (obj[0] < target[0] + 0.15)
        in_front = below_shelf & (target[1] - 3 * TARGET_RADIUS < obj[1]) & (obj[1] < target[1])
        z_scaling = (0.24 - obj[2]) / 0.24
        y_scaling = (obj[1] - (target[1] - 3 * TARGET_RADIUS)) / (3 * TARGET_RADIUS)
        bound_loss = rewards.hamacher_product(y_scaling, z_scaling)
        in_place = jnp.where(in_front, jnp.clip(in_place - bound_loss, 0.0, 1.0), in_place)
        in_place = jnp.where(below_shelf & (obj[1] > target[1]), 0.0, in_place)

        lifted = (tcp_to_obj < 0.025) & (tcp_opened > 0) & (obj[2] - 0.01 > c["obj_init_pos"][2])
        reward = jnp.where(lifted, reward + 1.0 + 5.0 * in_place, reward)
        reward = jnp.where(obj_to_target < TARGET_RADIUS, 10.0, reward)
        # Official grasp_success also needs touching_main_object (pad contact forces), which the Kinematics do not
        # carry; tcp_to_obj < 0.02 stands in for it. Info only: reward and success do not use it.
        grasp = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.02 > c["obj_init_pos"][2])
        return reward, info(
            (obj_to_target <= 0.07).astype(jnp.float32), (tcp_to_obj <= 0.03).astype(jnp.float32), grasp,
            object_grasped, in_place, obj_to_target, reward,
        )


TASKS = (ShelfPlace(),)
