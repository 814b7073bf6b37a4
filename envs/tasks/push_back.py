"""push-back-v3 (metaworld/envs/sawyer_push_back_v3.py): push the puck back towards the robot to the goal.

Also holds ``pad_caging_reward``, the ``_gripper_caging_reward`` override that push-back, soccer, sweep
and sweep-into each define (the same code up to two margins).
"""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, tcp_center

OBJ_RADIUS = 0.007
TARGET_RADIUS = 0.05


def pad_caging_reward(action, obj_pos, kin, c, *, obj_radius, grip_extra, x_z_success_margin):
    """The per-task ``_gripper_caging_reward`` override of push-back / soccer / sweep / sweep-into.

    grip_success_margin = obj_radius + grip_extra. ``gripper_closed`` is computed officially but unused.
    """
    pad_success_margin = 0.05
    grip_success_margin = obj_radius + grip_extra
    tcp = tcp_center(kin)
    left_pad, right_pad = kin.pos("body:leftpad"), kin.pos("body:rightpad")
    delta_object_y_left_pad = left_pad[1] - obj_pos[1]
    delta_object_y_right_pad = obj_pos[1] - right_pad[1]
    # self.init_left_pad / init_right_pad are live views into data.xpos (get_body_com), so they are the CURRENT pads.
    right_caging_margin = jnp.abs(jnp.abs(obj_pos[1] - right_pad[1]) - pad_success_margin)
    left_caging_margin = jnp.abs(jnp.abs(obj_pos[1] - left_pad[1]) - pad_success_margin)

    def tol(x, hi, margin):
        return rewards.tolerance(x, bounds=(obj_radius, hi), margin=margin, sigmoid="long_tail")

    right_caging = tol(delta_object_y_right_pad, pad_success_margin, right_caging_margin)
    left_caging = tol(delta_object_y_left_pad, pad_success_margin, left_caging_margin)
    right_gripping = tol(delta_object_y_right_pad, grip_success_margin, right_caging_margin)
    left_gripping = tol(delta_object_y_left_pad, grip_success_margin, left_caging_margin)
    y_caging = rewards.hamacher_product(right_caging, left_caging)
    y_gripping = rewards.hamacher_product(right_gripping, left_gripping)

    xz = jnp.array([0, 2])
    tcp_obj_norm_x_z = jnp.linalg.norm(tcp[xz] - obj_pos[xz])
    tcp_obj_x_z_margin = jnp.linalg.norm(c["obj_init_pos"][xz] - c["init_tcp"][xz]) - x_z_success_margin
    x_z_caging = rewards.tolerance(
        tcp_obj_norm_x_z, bounds=(0, x_z_success_margin), margin=tcp_obj_x_z_margin, sigmoid="long_tail"
    )
    caging = rewards.hamacher_product(y_caging, x_z_caging)
    gripping = jnp.where(caging > 0.95, y_gripping, 0.0)
    return (caging + gripping) / 2


class PushBack(Task):
    name = "push-back"
    frames = ("geom:objGeom",)

    def objects(self, kin, c):
        f = kin.frames["geom:objGeom"]  # official obs reads the geom's xpos (not the body's)
        return f.pos, rewards.scipy_quat_from_matrix(f.mat)

    def evaluate(self, obs, action, kin, c):
        obj, tcp_opened, target = obs[4:7], obs[3], c["target_pos"]
        tcp_to_obj = jnp.linalg.norm(obj - tcp_center(kin))
        target_to_obj = jnp.linalg.norm(obj - target)
        target_to_obj_init = jnp.linalg.norm(c["obj_init_pos"] - target)
        in_place = rewards.tolerance(target_to_obj, bounds=(0, TARGET_RADIUS), margin=target_to_obj_init, sigmoid="long_tail")
        object_grasped = pad_caging_reward(
            action, obj, kin, c, obj_radius=OBJ_RADIUS, grip_extra=0.003, x_z_success_margin=0.01
        )
        reward = rewards.hamacher_product(object_grasped, in_place)
        pushing = (tcp_to_obj < 0.01) & (0 < tcp_opened) & (tcp_opened < 0.55) & (target_to_obj_init - target_to_obj > 0.01)
        reward = jnp.where(pushing, reward + 1.0 + 5.0 * in_place, reward)
        reward = jnp.where(target_to_obj < TARGET_RADIUS, 10.0, reward)
        # Official grasp_success also needs touching_main_object (pad contact forces), which the Kinematics do not
        # carry; tcp_to_obj < 0.02 stands in for it. Info only: reward and success do not use it.
        grasp = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.02 > c["obj_init_pos"][2])
        return reward, info(
            (target_to_obj <= 0.07).astype(jnp.float32), (tcp_to_obj <= 0.03).astype(jnp.float32), grasp,
            object_grasped, in_place, target_to_obj, reward,
        )


TASKS = (PushBack(),)
