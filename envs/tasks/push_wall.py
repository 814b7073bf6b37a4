"""push-wall-v3 (metaworld/envs/sawyer_push_wall_v3.py): push the puck around the wall to the goal."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import PushV1, Task, info, tcp_center
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS

TARGET_RADIUS = 0.05


class PushWall(PushV1, Task):
    name = "push-wall"
    frames = ("geom:objGeom",)

    def objects(self, kin, c):
        f = kin.frames["geom:objGeom"]  # official obs reads the geom's xpos (not the body's)
        return f.pos, rewards.scipy_quat_from_matrix(f.mat)

    def evaluate(self, obs, action, kin, c):
        tcp, obj, tcp_opened, target = tcp_center(kin), obs[OBS_OBJ1_POS], obs[OBS_GRIPPER], c["target_pos"]
        midpoint = jnp.stack([-0.05, 0.77, obj[2]])
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        in_place_scaling = jnp.array([3.0, 1.0, 1.0])
        in_place_part1, in_place_part2, obj_to_target = rewards.two_stage_in_place(
            obj, c["obj_init_pos"], midpoint, target, in_place_scaling, TARGET_RADIUS
        )
        object_grasped = rewards.gripper_caging_reward(
            action, obj, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"), tcp=tcp,
            obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], object_reach_radius=0.01, obj_radius=0.015,
            pad_success_thresh=0.05, xz_thresh=0.005, high_density=True,
        )
        reward = 2 * object_grasped
        near = (tcp_to_obj < 0.02) & (tcp_opened > 0)
        pushed = jnp.where(
            obj[1] > 0.75, 2 * object_grasped + 1.0 + 4.0 + 3.0 * in_place_part2,
            2.0 * object_grasped + 1.0 + 4.0 * in_place_part1,
        )
        reward = jnp.where(near, pushed, reward)
        reward = jnp.where(obj_to_target < TARGET_RADIUS, 10.0, reward)
        # Official grasp_success also needs touching_main_object (pad contact forces), which the Kinematics do not
        # carry; tcp_to_obj < 0.02 stands in for it. Info only: reward and success do not use it.
        grasp = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.02 > c["obj_init_pos"][2])
        return reward, info(
            (obj_to_target <= 0.07).astype(jnp.float32), (tcp_to_obj <= 0.03).astype(jnp.float32), grasp,
            object_grasped, in_place_part2, obj_to_target, reward,
        )



TASKS = (PushWall(),)
