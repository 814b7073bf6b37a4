"""peg-unplug-side-v3 (metaworld/envs/sawyer_peg_unplug_side_v3.py): grasp the plug and pull it sideways out of the wall."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS


class PegUnplugSide(Task):
    name = "peg-unplug-side"
    frames = ("site:pegEnd", "body:plug1")

    def objects(self, kin, c):
        return kin.pos("site:pegEnd"), kin.frames["body:plug1"].quat

    def evaluate(self, obs, action, kin, c):
        # obj_init_pos is the pegEnd site after the official reset (a copy, so a per-episode constant).
        tcp, obj, tcp_opened, target = tcp_center(kin), obs[OBS_OBJ1_POS], obs[OBS_GRIPPER], c["target_pos"]
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        obj_to_target = jnp.linalg.norm(obj - target)
        object_grasped = rewards.gripper_caging_reward(
            action, obj, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"), tcp=tcp,
            obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], object_reach_radius=0.01, obj_radius=0.025,
            pad_success_thresh=0.05, xz_thresh=0.005, desired_gripper_effort=0.8, high_density=True,
        )
        in_place_margin = jnp.linalg.norm(c["obj_init_pos"] - target)
        in_place = rewards.tolerance(obj_to_target, bounds=(0, 0.05), margin=in_place_margin, sigmoid="long_tail")
        # This task's grasp_success is its own kinematic test (no pad contacts), and it feeds the reward.
        grasp_success = (tcp_opened > 0.5) & (obj[0] - c["obj_init_pos"][0] > 0.015)
        reward = 2 * object_grasped
        reward = jnp.where(grasp_success & (tcp_to_obj < 0.035), 1 + 2 * object_grasped + 5 * in_place, reward)
        reward = jnp.where(obj_to_target <= 0.05, 10.0, reward)
        return reward, info(
            (obj_to_target <= 0.07).astype(jnp.float32), (tcp_to_obj <= 0.03).astype(jnp.float32), grasp_success,
            object_grasped, in_place, obj_to_target, reward,
        )

    def constants_v1(self, env):
        return read_attrs(env, "maxPlacingDist")

    def reward_v1(self, obs, action, kin, c):
        """Reach the peg end (the z term from hand_init_pos, not init_tcp), then pull it to the goal in xy
        (reachCompleted: reachDist < 0.05, set before it is read)."""
        obj, goal, finger = obs[OBS_OBJ1_POS], c["target_pos"], tcp_center(kin)
        reach_dist = jnp.linalg.norm(obj - finger)
        placing_dist = jnp.linalg.norm(obj[:2] - goal[:2])
        reach = rewards.v1_reach(obj, finger, c["hand_init_pos"][-1], action, xy_radius=0.05, z_scale=2.0,
                                 grip_radius=0.05)
        place = jnp.maximum(rewards.v1_progress(placing_dist, c["maxPlacingDist"]), 0.0)
        return reach + jnp.where(reach_dist < 0.05, place, 0.0)


TASKS = (PegUnplugSide(),)
