"""hand-insert-v3 (metaworld/envs/sawyer_hand_insert_v3.py): carry the puck into the hole in the table."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS

TARGET_RADIUS = 0.05


class HandInsert(Task):
    name = "hand-insert"
    frames = ("body:obj",)

    def objects(self, kin, c):
        f = kin.frames["body:obj"]
        return f.pos, f.quat  # get_body_com("obj"), data.body("obj").xquat (MuJoCo w, x, y, z)

    def evaluate(self, obs, action, kin, c):
        obj, tcp_opened, target = obs[OBS_OBJ1_POS], obs[OBS_GRIPPER], c["target_pos"]
        tcp = tcp_center(kin)
        target_to_obj = jnp.linalg.norm(obj - target)
        target_to_obj_init = jnp.linalg.norm(c["obj_init_pos"] - target)
        in_place = rewards.tolerance(target_to_obj, bounds=(0, TARGET_RADIUS), margin=target_to_obj_init, sigmoid="long_tail")
        object_grasped = rewards.gripper_caging_reward(
            action, obj, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"), tcp=tcp,
            obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], object_reach_radius=0.01, obj_radius=0.015,
            pad_success_thresh=0.05, xz_thresh=0.005, high_density=True,
        )
        reward = rewards.hamacher_product(object_grasped, in_place)
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        reward = jnp.where((tcp_to_obj < 0.02) & (tcp_opened > 0), reward + 1.0 + 7.0 * in_place, reward)
        reward = jnp.where(target_to_obj < TARGET_RADIUS, 10.0, reward)
        # Official grasp_success also needs touching_main_object (pad contact forces), which the Kinematics do not
        # carry; tcp_to_obj < 0.02 stands in for it. Info only: reward and success do not use it.
        grasp = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.02 > c["obj_init_pos"][2])
        return reward, info(
            (target_to_obj <= 0.05).astype(jnp.float32), (tcp_to_obj <= 0.03).astype(jnp.float32), grasp,
            object_grasped, in_place, target_to_obj, reward,
        )


    def constants_v1(self, env):
        return read_attrs(env, "maxReachDist")

    def reward_v1(self, obs, action, kin, c):
        """Bring the hand over the goal in xy, then down to it in z (the object is ignored)."""
        finger, goal = tcp_center(kin), c["target_pos"]
        reach_dist = jnp.linalg.norm(finger[:-1] - goal[:-1])
        reach_z = jnp.abs(finger[-1] - goal[-1])
        near = jnp.where(reach_dist < 0.05, rewards.v1_progress(reach_z, c["maxReachDist"]), 0.0)
        return -reach_dist + jnp.maximum(near, 0.0)


TASKS = (HandInsert(),)
