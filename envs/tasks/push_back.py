"""push-back-v3 (metaworld/envs/sawyer_push_back_v3.py): push the puck back towards the robot to the goal.

Also holds ``pad_caging_reward``, the ``_gripper_caging_reward`` override that push-back, soccer, sweep
and sweep-into each define (the same code up to two margins); its caging part is ``rewards.pad_caging``, which
pick-place's own override shares.
"""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import PushV1, Task, info, tcp_center
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS

OBJ_RADIUS = 0.007
TARGET_RADIUS = 0.05


def pad_caging_reward(action, obj_pos, kin, c, *, obj_radius, grip_extra, x_z_success_margin):
    """The per-task ``_gripper_caging_reward`` override of push-back / soccer / sweep / sweep-into.

    grip_success_margin = obj_radius + grip_extra. ``gripper_closed`` is computed officially but unused.
    """
    caging, y_gripping = rewards.pad_caging(
        obj_pos, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"), tcp=tcp_center(kin),
        obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], obj_radius=obj_radius,
        x_z_success_margin=x_z_success_margin, pad_success_margin=0.05, grip_success_margin=obj_radius + grip_extra,
    )
    gripping = jnp.where(caging > 0.95, y_gripping, 0.0)
    return (caging + gripping) / 2


class PushBack(PushV1, Task):
    name = "push-back"
    frames = ("geom:objGeom",)

    def objects(self, kin, c):
        f = kin.frames["geom:objGeom"]  # official obs reads the geom's xpos (not the body's)
        return f.pos, rewards.scipy_quat_from_matrix(f.mat)

    def evaluate(self, obs, action, kin, c):
        obj, tcp_opened, target = obs[OBS_OBJ1_POS], obs[OBS_GRIPPER], c["target_pos"]
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
