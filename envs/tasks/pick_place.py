"""pick-place-v3 (metaworld/envs/sawyer_pick_place_v3.py): pick up the puck and place it at the goal in the air."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, tcp_center

TARGET_RADIUS = 0.05


def _gripper_caging_reward(action, obj_pos, kin, c):
    """SawyerPickPlaceEnvV3._gripper_caging_reward (its own variant, always high density)."""
    pad_success_margin, x_z_success_margin, obj_radius = 0.05, 0.005, 0.015
    tcp = tcp_center(kin)
    left_pad, right_pad = kin.pos("body:leftpad"), kin.pos("body:rightpad")
    delta_object_y_left_pad = left_pad[1] - obj_pos[1]
    delta_object_y_right_pad = obj_pos[1] - right_pad[1]
    # self.init_left_pad / init_right_pad are live views into data.xpos (get_body_com), so they are the CURRENT pads.
    right_caging_margin = jnp.abs(jnp.abs(obj_pos[1] - right_pad[1]) - pad_success_margin)
    left_caging_margin = jnp.abs(jnp.abs(obj_pos[1] - left_pad[1]) - pad_success_margin)
    right_caging = rewards.tolerance(
        delta_object_y_right_pad, bounds=(obj_radius, pad_success_margin), margin=right_caging_margin, sigmoid="long_tail"
    )
    left_caging = rewards.tolerance(
        delta_object_y_left_pad, bounds=(obj_radius, pad_success_margin), margin=left_caging_margin, sigmoid="long_tail"
    )
    y_caging = rewards.hamacher_product(left_caging, right_caging)

    xz = jnp.array([0, 2])
    tcp_obj_norm_x_z = jnp.linalg.norm(tcp[xz] - obj_pos[xz])
    tcp_obj_x_z_margin = jnp.linalg.norm(c["obj_init_pos"][xz] - c["init_tcp"][xz]) - x_z_success_margin
    x_z_caging = rewards.tolerance(
        tcp_obj_norm_x_z, bounds=(0, x_z_success_margin), margin=tcp_obj_x_z_margin, sigmoid="long_tail"
    )
    gripper_closed = jnp.minimum(jnp.maximum(0.0, action[-1]), 1.0)
    caging = rewards.hamacher_product(y_caging, x_z_caging)
    gripping = jnp.where(caging > 0.97, gripper_closed, 0.0)
    caging_and_gripping = rewards.hamacher_product(caging, gripping)
    return (caging_and_gripping + caging) / 2


class PickPlace(Task):
    name = "pick-place"
    frames = ("body:obj", "geom:objGeom")

    def objects(self, kin, c):
        return kin.pos("body:obj"), rewards.scipy_quat_from_matrix(kin.frames["geom:objGeom"].mat)

    def evaluate(self, obs, action, kin, c):
        tcp, obj, tcp_opened, target = tcp_center(kin), obs[4:7], obs[3], c["target_pos"]
        obj_to_target = jnp.linalg.norm(obj - target)
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        in_place_margin = jnp.linalg.norm(c["obj_init_pos"] - target)
        in_place = rewards.tolerance(obj_to_target, bounds=(0, TARGET_RADIUS), margin=in_place_margin, sigmoid="long_tail")
        object_grasped = _gripper_caging_reward(action, obj, kin, c)
        reward = rewards.hamacher_product(object_grasped, in_place)
        lifted = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.01 > c["obj_init_pos"][2])
        reward = jnp.where(lifted, reward + 1.0 + 5.0 * in_place, reward)
        reward = jnp.where(obj_to_target < TARGET_RADIUS, 10.0, reward)
        # Official grasp_success also needs touching_main_object (pad contact forces), which the Kinematics do not
        # carry; tcp_to_obj < 0.02 stands in for it. Info only: reward and success do not use it.
        grasp = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.02 > c["obj_init_pos"][2])
        return reward, info(
            (obj_to_target <= 0.07).astype(jnp.float32), (tcp_to_obj <= 0.03).astype(jnp.float32), grasp,
            object_grasped, in_place, obj_to_target, reward,
        )


TASKS = (PickPlace(),)
