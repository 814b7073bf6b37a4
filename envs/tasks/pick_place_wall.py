"""pick-place-wall-v3 (metaworld/envs/sawyer_pick_place_wall_v3.py): lift the puck over the wall and place it at the goal."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.tasks.pick_place import v1_pick_place_reward
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS

TARGET_RADIUS = 0.05


class PickPlaceWall(Task):
    name = "pick-place-wall"
    frames = ("geom:objGeom",)

    def objects(self, kin, c):
        f = kin.frames["geom:objGeom"]  # official obs reads the geom (not the body) position
        return f.pos, rewards.scipy_quat_from_matrix(f.mat)

    def evaluate(self, obs, action, kin, c):
        tcp, obj, tcp_opened, target = tcp_center(kin), obs[OBS_OBJ1_POS], obs[OBS_GRIPPER], c["target_pos"]
        midpoint = jnp.stack([target[0], 0.77, 0.25])
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        in_place_scaling = jnp.array([1.0, 1.0, 3.0])
        in_place_part1, in_place_part2, obj_to_target = rewards.two_stage_in_place(
            obj, c["obj_init_pos"], midpoint, target, in_place_scaling, TARGET_RADIUS
        )
        object_grasped = rewards.gripper_caging_reward(
            action, obj, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"), tcp=tcp,
            obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], obj_radius=0.015, pad_success_thresh=0.05,
            object_reach_radius=0.01, xz_thresh=0.005, high_density=False,
        )
        in_place_and_object_grasped = rewards.hamacher_product(object_grasped, in_place_part1)
        reward = in_place_and_object_grasped
        lifted = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.015 > c["obj_init_pos"][2])
        lifted_reward = jnp.where(
            obj[1] > 0.75,
            in_place_and_object_grasped + 1.0 + 4.0 + 3.0 * in_place_part2,
            in_place_and_object_grasped + 1.0 + 4.0 * in_place_part1,
        )
        reward = jnp.where(lifted, lifted_reward, reward)
        reward = jnp.where(obj_to_target < TARGET_RADIUS, 10.0, reward)
        # Official grasp_success also needs touching_main_object (pad contact forces), which the Kinematics do not
        # carry; tcp_to_obj < 0.02 stands in for it. Info only: reward and success do not use it.
        grasp = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.02 > c["obj_init_pos"][2])
        return reward, info(
            (obj_to_target <= 0.07).astype(jnp.float32), (tcp_to_obj <= 0.03).astype(jnp.float32), grasp,
            object_grasped, in_place_part2, obj_to_target, reward,
        )

    def constants_v1(self, env):
        return read_attrs(env, "heightTarget", "objHeight", "maxPlacingDist")

    def reward_v1(self, obs, action, kin, c):
        """Official V1: pick-place's, line for line (the wall is not in it)."""
        return v1_pick_place_reward(obs, action, kin, c)


TASKS = (PickPlaceWall(),)
